"""Encoders: token shapes, input checks, frozen backbones, and the Hydra options that build them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmbehave.models.audio_encoders import (
    ResNetAudioEncoder,
    build_resnet18_audio_encoder,
)
from mmbehave.models.cnn3d import CNN3DEncoder
from mmbehave.models.video_encoders import VideoMAEEncoder, build_videomae_encoder

CONF = Path(__file__).resolve().parents[1] / "conf"
TRUSTED = ["mmbehave.models.*"]  # Hydra 1.4 asks callers to whitelist the targets they trust


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_videomae(**overrides):
    settings = dict(
        model_name=None, pretrained=False, freeze_backbone=False, on_load_failure="fallback",
        num_frames=4, image_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=2,
        intermediate_size=64,
    )
    return build_videomae_encoder(**{**settings, **overrides})


def test_videomae_tokens_shape():
    encoder = tiny_videomae()
    assert isinstance(encoder, VideoMAEEncoder) and encoder.fallback_reason is None
    tokens = encoder(torch.rand(2, 3, 4, 32, 32))
    # (4 frames / tubelet 2) x (32 / 8)^2 patches
    assert tokens.shape == (2, 2 * 4 * 4, 32) and encoder.output_dim == 32


def test_videomae_token_pool_averages_each_block_of_the_token_grid():
    torch.manual_seed(0)
    whole, pooled = tiny_videomae(), tiny_videomae(token_pool=[1, 2, 2])
    pooled.load_state_dict(whole.state_dict())
    video = torch.rand(2, 3, 4, 32, 32)
    tokens = whole(video).reshape(2, 2, 4, 4, 32)  # the (time, height, width) grid, time slowest
    expected = tokens.reshape(2, 2, 2, 2, 2, 2, 32).mean(dim=(3, 5)).reshape(2, 8, 32)
    assert torch.allclose(pooled(video), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"token_pool=\[1, 3, 1\] does not tile .*\[2, 4, 4\]"):
        tiny_videomae(token_pool=[1, 3, 1])
    with pytest.raises(ValueError, match="three positive integers"):
        tiny_videomae(token_pool=[2, 2])


def test_videomae_rejects_wrong_clip_size():
    encoder = tiny_videomae()
    with pytest.raises(ValueError, match=r"\(4, 32, 32\).*\(6, 32, 32\)"):
        encoder(torch.rand(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        encoder(torch.rand(1, 1, 4, 32, 32))


def test_videomae_freeze_backbone():
    encoder = tiny_videomae(freeze_backbone=True)
    assert not any(p.requires_grad for p in encoder.parameters())
    assert all(p.requires_grad for p in tiny_videomae().parameters())


def test_videomae_config_errors_name_keys():
    with pytest.raises(ValueError, match="video_encoder.hidden_size.*video_encoder.num_heads"):
        tiny_videomae(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match=r"on_load_failure.*\['fallback', 'raise'\]"):
        tiny_videomae(on_load_failure="ignore")


@pytest.mark.parametrize(
    "clip, tokens",
    [((8, 32, 32), 4 * 2 * 2), ((2, 16, 16), 1), ((3, 20, 24), 2 * 2 * 2)],
)
def test_cnn3d_tokens_shape(clip, tokens):
    encoder = CNN3DEncoder(feature_dim=24, width=4)
    out = encoder(torch.rand(2, 3, *clip))
    assert out.shape == (2, tokens, 24) and encoder.output_dim == 24 and encoder.fallback_reason is None


def test_resnet_audio_tokens_are_frequency_major_layer4_cells():
    encoder = ResNetAudioEncoder().eval()
    captured = {}
    encoder.backbone.layer4.register_forward_hook(lambda _m, _i, out: captured.setdefault("map", out))
    tokens = encoder(torch.randn(2, 1, 64, 101))
    feature_map = captured["map"]  # (B, 512, F', T') = (2, 512, 2, 4)
    assert feature_map.shape == (2, 512, 2, 4) and tokens.shape == (2, 8, 512)
    # token f·T' + t is the layer4 cell at frequency f, time t
    assert torch.equal(tokens[:, 1 * 4 + 3], feature_map[:, :, 1, 3])
    with pytest.raises(ValueError, match=r"\(B, 1, n_mels, time\).*\(2, 3, 64, 101\)"):
        encoder(torch.randn(2, 3, 64, 101))


def test_resnet_audio_frozen_batchnorm_stays_in_eval():
    frozen = build_resnet18_audio_encoder(pretrained=False, freeze_backbone=True, on_load_failure="fallback")
    frozen.train()
    assert frozen.training and not any(p.requires_grad for p in frozen.parameters())
    norms = [m for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    before = [m.running_mean.clone() for m in norms]
    frozen(torch.randn(2, 1, 32, 32) * 3 + 1)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))

    trainable = build_resnet18_audio_encoder(pretrained=False, freeze_backbone=False, on_load_failure="fallback")
    trainable.train()
    trainable(torch.randn(2, 1, 32, 32) * 3 + 1)
    assert not torch.equal(trainable.backbone.bn1.running_mean, torch.zeros(64))  # control: stats do move


def _with_data(group: str, option: str):
    return OmegaConf.create(
        {"data": {"num_frames": 4, "image_size": 32}, "encoder": OmegaConf.load(CONF / group / f"{option}.yaml")}
    )


def test_hydra_video_encoder_options():
    cfg = _with_data("video_encoder", "videomae_tiny")
    encoder = instantiate(cfg.encoder, _execution_whitelist_=TRUSTED)
    assert isinstance(encoder, VideoMAEEncoder) and encoder.output_dim == 96
    assert encoder(torch.rand(1, 3, 4, 32, 32)).shape == (1, 2 * 4 * 4, 96)

    encoder = instantiate(_with_data("video_encoder", "cnn3d").encoder, _execution_whitelist_=TRUSTED)
    assert isinstance(encoder, CNN3DEncoder) and encoder.output_dim == 128
    assert instantiate(_with_data("video_encoder", "none").encoder, _execution_whitelist_=TRUSTED) is None


@pytest.mark.parametrize("option", ["videomae_tiny", "cnn3d"])
def test_per_clip_input_norm_evens_out_a_sites_light_and_colour(option):
    """video_encoder.input_norm=clip: the same scene under another site's light, colour cast and contrast (a
    per-channel a*x + b) gives the same tokens; the encoder's fixed statistics do not."""
    torch.manual_seed(0)
    scene = torch.rand(2, 3, 4, 32, 32)
    other_site = scene * torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1, 1) + torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1, 1)
    cfg = _with_data("video_encoder", option)
    outputs = {}
    for norm in ("clip", "fixed"):
        cfg.encoder.input_norm = norm
        torch.manual_seed(1)  # the same weights for both
        encoder = instantiate(cfg.encoder, _execution_whitelist_=TRUSTED).eval()
        with torch.no_grad():
            outputs[norm] = (encoder(scene), encoder(other_site))
    assert torch.allclose(*outputs["clip"], atol=1e-4)
    assert not torch.allclose(*outputs["fixed"], atol=1e-2)
    flat = torch.zeros(1, 3, 4, 32, 32)  # a black clip: finite, not divided by zero
    assert torch.isfinite(instantiate(cfg.encoder, _execution_whitelist_=TRUSTED)(flat)).all()
    with pytest.raises(ValueError, match="input_norm='daily' is not one of fixed, clip"):
        tiny_videomae(input_norm="daily")


def test_hydra_audio_encoder_options():
    encoder = instantiate(_with_data("audio_encoder", "resnet18").encoder, _execution_whitelist_=TRUSTED)
    assert isinstance(encoder, ResNetAudioEncoder) and encoder.fallback_reason is None
    assert instantiate(_with_data("audio_encoder", "none").encoder, _execution_whitelist_=TRUSTED) is None
    # keys a preset merges into the group (debug=fast sets encoder sizes) must not break the ablation
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "audio_encoder" / "none.yaml"), {"hidden_size": 32})
    assert instantiate(cfg, _execution_whitelist_=TRUSTED) is None


def test_videomae_tokens_are_normalised_when_the_checkpoint_has_no_final_norm():
    mean_pooling = tiny_videomae()  # VideoMAE's default: pools by mean, so its model has no final layernorm
    assert mean_pooling.backbone.layernorm is None
    with torch.no_grad():
        tokens = mean_pooling(torch.rand(2, 3, 4, 32, 32))
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(tokens.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens.std(-1, unbiased=False), torch.ones(tokens.shape[:2]), atol=1e-3, rtol=0)
