"""Fusion: MBT's bottleneck-only exchange, per-sample missing modalities, and the concat baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmbehave.models.concat_fusion import ConcatFusion
from mmbehave.models.mbt import MBTFusion

CONF = Path(__file__).resolve().parents[1] / "conf"
DIMS = {"video": 24, "audio": 16}


def mbt(**overrides) -> MBTFusion:
    torch.manual_seed(0)
    settings = dict(hidden_dim=32, num_layers=2, num_heads=4, num_bottlenecks=3, dropout=0.1, max_tokens=16)
    return MBTFusion(DIMS, **{**settings, **overrides}).eval()  # eval: dropout off, outputs comparable


def tokens(batch: int = 2, n_video: int = 5, n_audio: int = 7, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "video": torch.randn(batch, n_video, DIMS["video"], generator=generator),
        "audio": torch.randn(batch, n_audio, DIMS["audio"], generator=generator),
    }


def test_mbt_shapes_and_attention_layout():
    model = mbt()
    out = model(tokens(), return_attention=True)
    assert out.pooled.shape == (2, 32) and model.hidden_dim == 32
    # per modality, per layer: (B, heads, 1 CLS + N tokens + 3 bottlenecks, same)
    assert [a.shape for a in out.attentions["video"]] == [(2, 4, 1 + 5 + 3, 1 + 5 + 3)] * 2
    assert [a.shape for a in out.attentions["audio"]] == [(2, 4, 1 + 7 + 3, 1 + 7 + 3)] * 2
    assert torch.allclose(out.attentions["video"][0].sum(-1), torch.ones(2, 4, 9), atol=1e-5)
    assert model(tokens()).attentions is None


def test_audio_reaches_video_only_through_bottlenecks():
    x, changed = tokens(), tokens()
    changed["audio"] = tokens(seed=7)["audio"]  # other sounds
    with torch.no_grad():
        fused = mbt(num_bottlenecks=3)
        video_cls, _ = fused.modality_cls(x)
        # Exact comparison: the video stream computes the same ops either way, so any change came from audio.
        assert not torch.equal(video_cls["video"], fused.modality_cls(changed)[0]["video"])

        isolated = mbt(num_bottlenecks=0)
        video_cls, _ = isolated.modality_cls(x)
        assert torch.equal(video_cls["video"], isolated.modality_cls(changed)[0]["video"])


def test_sample_without_audio_is_the_video_only_model():
    model = mbt()
    x = tokens()
    present = {"audio": torch.tensor([False, True])}
    with torch.no_grad():
        pooled = model(x, present=present).pooled
        video_only = model({"video": x["video"]}).pooled
        # What is exactly true: sample 0 computes what the same weights compute from video alone ...
        assert torch.allclose(pooled[0], video_only[0], atol=1e-6)
        # ... so its audio tokens, even garbage, cannot matter; sample 1's audio does.
        x["audio"][0] = float("nan")
        assert torch.allclose(model(x, present=present).pooled[0], pooled[0], atol=1e-6)
        x["audio"][1] = tokens(seed=7)["audio"][1]  # other sounds
        assert not torch.allclose(model(x, present=present).pooled[1], pooled[1], atol=1e-4)


def test_sample_with_no_modality_pools_to_zero():
    present = {"video": torch.tensor([False, True]), "audio": torch.tensor([False, True])}
    with torch.no_grad():
        pooled = mbt()(tokens(), present=present).pooled
    assert torch.equal(pooled[0], torch.zeros(32)) and pooled[1].abs().sum() > 0


def test_single_modality_mbt_and_gradients():
    model = MBTFusion({"audio": 16}, hidden_dim=16, num_layers=1, num_heads=2, num_bottlenecks=2)
    out = model({"audio": torch.randn(3, 4, 16)}, return_attention=True)
    assert out.pooled.shape == (3, 16) and list(out.attentions) == ["audio"]

    model = MBTFusion(DIMS, hidden_dim=16, num_layers=2, num_heads=2, num_bottlenecks=2)
    pooled = model(tokens()).pooled
    (pooled * torch.randn_like(pooled)).sum().backward()  # not pooled.sum(): a LayerNorm output sums to a constant
    assert model.bottleneck.grad.abs().sum() > 0 and model.project["audio"].weight.grad.abs().sum() > 0


def test_mbt_errors_name_the_keys():
    with pytest.raises(ValueError, match=r"fusion\.hidden_dim=30.*fusion\.num_heads=4") as info:
        MBTFusion(DIMS, hidden_dim=30, num_heads=4)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"fusion\.max_tokens=4"):
        mbt(max_tokens=4)(tokens())
    with pytest.raises(ValueError, match=r"\(B, N, 24\).*\(2, 5, 8\)"):
        mbt()({"video": torch.randn(2, 5, 8)})
    with pytest.raises(ValueError, match=r"present\['audio'\].*\(2,\).*\(3,\)"):
        mbt()(tokens(), present={"audio": torch.ones(3, dtype=torch.bool)})


def test_concat_shapes_and_missing_modality():
    torch.manual_seed(0)
    model = ConcatFusion(DIMS, hidden_dim=32, dropout=0.1, num_layers=2).eval()
    x = tokens()
    out = model(x, return_attention=True)
    assert out.pooled.shape == (2, 32) and out.attentions is None and model.hidden_dim == 32

    absent = {"audio": torch.tensor([False, False])}
    with torch.no_grad():
        pooled = model(x, present=absent).pooled
        assert torch.allclose(pooled, model({"video": x["video"]}).pooled)  # no audio key = audio absent
        x["audio"] += 1.0
        assert torch.equal(model(x, present=absent).pooled, pooled)
        assert not torch.allclose(model(x).pooled, pooled)


def test_hydra_fusion_options_are_partials():
    for option, kind in (("mbt", MBTFusion), ("concat", ConcatFusion)):
        cfg = OmegaConf.load(CONF / "fusion" / f"{option}.yaml")
        factory = instantiate(cfg, _execution_whitelist_=["mmbehave.models.*"])
        model = factory(input_dims=DIMS)
        assert isinstance(model, kind) and model.hidden_dim == 128
        assert model(tokens()).pooled.shape == (2, 128)


# ---- the exchange is real: no setting means "no fusion" without saying so ---------------------------------

def video_cls_moves_with_audio(model: MBTFusion) -> bool:
    with torch.no_grad():
        before = model.modality_cls(tokens())[0]["video"]
        after = model.modality_cls({**tokens(), "audio": tokens(seed=7)["audio"]})[0]["video"]
    return not torch.equal(before, after)  # the video stream's own ops are identical: any change came from audio


def swept_values(key: str) -> list[int]:
    preset = OmegaConf.load(CONF / "hparams_search" / "mbt.yaml")
    text = preset.hydra.sweeper.params[key]  # e.g. "choice(2, 3, 4)"
    return [int(v) for v in text[text.index("(") + 1:-1].split(",")]


@pytest.mark.parametrize("num_layers", swept_values("fusion.num_layers"))
@pytest.mark.parametrize("num_bottlenecks", swept_values("fusion.num_bottlenecks"))
def test_every_swept_setting_exchanges_between_the_modalities(num_layers, num_bottlenecks):
    assert num_bottlenecks > 0
    assert video_cls_moves_with_audio(mbt(num_layers=num_layers, num_bottlenecks=num_bottlenecks))


def test_a_setting_that_cannot_exchange_is_refused_in_one_line():
    from mmbehave.core.errors import ConfigError

    with pytest.raises(ConfigError, match="fusion.num_layers=1 with fusion.fusion_layer=0 leaves 1 fusion layer") as info:
        mbt(num_layers=1)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="leaves 1 fusion layer"):
        mbt(num_layers=3, fusion_layer=2)
    with pytest.raises(ConfigError, match="fusion.fusion_layer=3 must be in"):
        mbt(num_layers=3, fusion_layer=3)
    # Late fusion on purpose, or one modality: nothing to exchange, nothing refused.
    assert not video_cls_moves_with_audio(mbt(num_layers=1, num_bottlenecks=0))
    MBTFusion({"audio": 16}, hidden_dim=16, num_layers=1, num_heads=2, num_bottlenecks=2)


def test_layers_before_the_fusion_layer_are_unimodal():
    model = mbt(num_layers=3, fusion_layer=1)
    out = model(tokens(), return_attention=True)
    # layer 1 sees only [CLS; tokens]; layers 2 and 3 also the 3 bottlenecks
    assert [a.shape[-1] for a in out.attentions["video"]] == [1 + 5, 1 + 5 + 3, 1 + 5 + 3]
    assert video_cls_moves_with_audio(model)


def test_attention_dropout_defaults_to_dropout_and_can_be_turned_off_alone():
    from helpers import compose_config

    def attention_and_mlp_dropout(fusion: MBTFusion) -> set[tuple[float, float]]:
        return {(block.attention.dropout, block.mlp[2].p) for layer in fusion.layers for block in layer.values()}

    dims = {"video": 16, "audio": 8}
    assert attention_and_mlp_dropout(MBTFusion(dims, hidden_dim=16, dropout=0.2)) == {(0.2, 0.2)}
    assert attention_and_mlp_dropout(MBTFusion(dims, hidden_dim=16, dropout=0.2, attention_dropout=0.0)) == {(0.0, 0.2)}
    # The frozen-backbone preset turns it off (the fused CPU attention kernel); everything else keeps fusion.dropout.
    assert compose_config(["hparams_search=mbt_frozen"]).fusion.attention_dropout == 0.0
    assert compose_config(["fusion.dropout=0.3"]).fusion.attention_dropout == 0.3
