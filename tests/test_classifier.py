"""Classifier: each modality combination, absent inputs, and the full model built from the config files."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmbehave.models.audio_encoders import ResNetAudioEncoder
from mmbehave.models.classifier import MultiModalClassifier
from mmbehave.models.cnn3d import CNN3DEncoder
from mmbehave.models.mbt import MBTFusion

CONF = Path(__file__).resolve().parents[1] / "conf"
SPECIES, BEHAVIORS = 5, 3


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def audio_encoder():
    return ResNetAudioEncoder()  # the slowest part to build: share it


def video():
    return torch.rand(2, 3, 4, 32, 32)


def audio():
    return torch.randn(2, 1, 32, 40)


def build(video_encoder, audio_encoder, head_dropout: float = 0.1, **fusion_overrides) -> MultiModalClassifier:
    torch.manual_seed(0)
    settings = dict(hidden_dim=16, num_layers=2, num_heads=2, num_bottlenecks=2, **fusion_overrides)
    fusion = functools.partial(MBTFusion, **settings)
    return MultiModalClassifier(video_encoder, audio_encoder, fusion, {"species": SPECIES, "behavior": BEHAVIORS},
                                head_dropout).eval()


def test_video_and_audio(audio_encoder):
    model = build(CNN3DEncoder(feature_dim=24, width=4), audio_encoder)
    assert model.modalities == "video+audio" and model.fusion.input_dims == {"video": 24, "audio": 512}
    out = model(video(), audio(), return_attention=True)
    assert out.logits["species"].shape == (2, SPECIES) and out.logits["behavior"].shape == (2, BEHAVIORS)
    assert out.fused.shape == (2, 16) and set(out.attentions) == {"video", "audio"}
    assert model(video(), audio()).attentions is None
    assert {m: t.shape for m, t in model.encode(video(), audio()).items()} == {
        "video": (2, 2 * 2 * 2, 24),
        "audio": (2, 1 * 2, 512),
    }


def test_video_only_model_ignores_audio_input():
    model = build(CNN3DEncoder(feature_dim=24, width=4), None)
    assert model.modalities == "video" and list(model.fusion.input_dims) == ["video"]
    v = video()
    with torch.no_grad():
        assert torch.equal(model(v, audio()).logits["species"], model(v).logits["species"])


def test_audio_only_model(audio_encoder):
    model = build(None, audio_encoder)
    assert model.modalities == "audio"
    assert model(audio=audio()).logits["behavior"].shape == (2, BEHAVIORS)
    with pytest.raises(ValueError, match="audio model got no input"):
        model(video=video())


def test_audio_none_means_absent_for_the_whole_batch(audio_encoder):
    model = build(CNN3DEncoder(feature_dim=24, width=4), audio_encoder)
    v, a = video(), audio()
    with torch.no_grad():
        without = model(v, None).logits["species"]
        flagged = model(v, a, audio_present=torch.tensor([False, False])).logits["species"]
        mixed = model(v, a, audio_present=torch.tensor([False, True])).logits["species"]
    assert torch.allclose(without, flagged, atol=1e-6)
    assert torch.allclose(mixed[0], without[0], atol=1e-6) and not torch.allclose(mixed[1], without[1])


def test_no_modality_is_an_error():
    message = "^video_encoder=none and audio_encoder=none: at least one modality is needed$"
    with pytest.raises(ValueError, match=message):
        build(None, None)


def test_fallbacks_lists_only_encoders_that_fell_back(audio_encoder):
    video_encoder = CNN3DEncoder(feature_dim=24, width=4)
    model = build(video_encoder, audio_encoder)
    assert model.fallbacks == {}
    video_encoder.fallback_reason = "videomae 'x' could not be loaded (offline); using cnn3d"
    assert model.fallbacks == {"video_encoder": video_encoder.fallback_reason}


def model_file():
    """conf/model/multimodal.yaml with its heads group, as Hydra merges them (its defaults list is Hydra's)."""
    model = OmegaConf.load(CONF / "model" / "multimodal.yaml")
    del model["defaults"]
    model.heads = OmegaConf.load(CONF / "model" / "heads" / "guide.yaml")
    return model


def compose(video_option: str, audio_option: str, fusion_option: str):
    """The model config as train.yaml composes it, with the debug-sized overrides."""
    cfg = OmegaConf.create(
        {
            "data": {"num_frames": 4, "image_size": 32},
            "video_encoder": OmegaConf.load(CONF / "video_encoder" / f"{video_option}.yaml"),
            "audio_encoder": OmegaConf.load(CONF / "audio_encoder" / f"{audio_option}.yaml"),
            "fusion": OmegaConf.load(CONF / "fusion" / f"{fusion_option}.yaml"),
            "model": model_file(),
        }
    )
    return OmegaConf.merge(cfg, {"fusion": {"hidden_dim": 32}})


@pytest.mark.parametrize(
    "options, modalities",
    [
        (("videomae_tiny", "resnet18", "mbt"), "video+audio"),
        (("cnn3d", "none", "concat"), "video"),
        (("none", "resnet18", "mbt"), "audio"),
    ],
)
def test_model_config_instantiates_and_trains(options, modalities):
    cfg = compose(*options)
    torch.manual_seed(0)
    model = instantiate(
        cfg.model, num_classes={"species": SPECIES, "behavior": BEHAVIORS}, _execution_whitelist_=["mmbehave.models.*"]
    )
    assert isinstance(model, MultiModalClassifier) and model.modalities == modalities and model.fallbacks == {}
    out = model(video(), audio())
    assert out.logits["species"].shape == (2, SPECIES) and out.fused.shape == (2, 32)
    (out.logits["species"].logsumexp(-1).sum() + out.logits["behavior"].logsumexp(-1).sum()).backward()
    for name, encoder in (("video", model.video_encoder), ("audio", model.audio_encoder)):
        if encoder is not None:
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters()), name


def batchnorm_buffers(model) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in model.named_buffers() if "running" in name}


@pytest.mark.parametrize("absent", ["audio", "video"])
def test_what_sits_in_an_absent_row_changes_nothing_else(absent):
    """Train mode, as in training: a clip's missing modality (silence, black frames, or anything) must not move
    the encoder's BatchNorm statistics nor the other clips' outputs."""
    generator = torch.Generator().manual_seed(5)
    inputs = {"video": torch.rand(4, 3, 4, 32, 32, generator=generator),
              "audio": torch.randn(4, 1, 32, 40, generator=generator)}
    present = torch.tensor([True, True, False, True])
    placeholders = {"audio": torch.full((1, 32, 40), -7.0), "video": torch.zeros(3, 4, 32, 32)}

    results = []
    for filler in (placeholders[absent], 100 * torch.randn(placeholders[absent].shape, generator=generator)):
        torch.manual_seed(0)  # the same weights both times
        model = build(CNN3DEncoder(feature_dim=24, width=4), ResNetAudioEncoder(), dropout=0.0, head_dropout=0.0)
        model.train()
        batch = {k: v.clone() for k, v in inputs.items()}
        batch[absent][2] = filler
        output = model(**batch, **{f"{absent}_present": present})
        results.append((output.logits["species"].detach(), batchnorm_buffers(model)))
    (logits_a, buffers_a), (logits_b, buffers_b) = results
    kept = present.nonzero().squeeze(1)
    torch.testing.assert_close(logits_a[kept], logits_b[kept], atol=1e-5, rtol=0)
    for name in buffers_a:
        torch.testing.assert_close(buffers_a[name], buffers_b[name], atol=1e-6, rtol=0, msg=name)


def test_an_absent_modality_gets_no_gradient_from_absent_rows():
    model = build(None, ResNetAudioEncoder(), dropout=0.0, head_dropout=0.0)
    model.train()
    audio_batch = torch.randn(3, 1, 32, 40, requires_grad=True)
    output = model(audio=audio_batch, audio_present=torch.tensor([True, False, True]))
    output.logits["species"].sum().backward()
    assert audio_batch.grad[1].abs().sum() == 0 and audio_batch.grad[0].abs().sum() > 0
