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


def build(video_encoder, audio_encoder, **fusion_overrides) -> MultiModalClassifier:
    torch.manual_seed(0)
    settings = dict(hidden_dim=16, num_layers=1, num_heads=2, num_bottlenecks=2, **fusion_overrides)
    fusion = functools.partial(MBTFusion, **settings)
    return MultiModalClassifier(video_encoder, audio_encoder, fusion, SPECIES, BEHAVIORS).eval()


def test_video_and_audio(audio_encoder):
    model = build(CNN3DEncoder(feature_dim=24, width=4), audio_encoder)
    assert model.modalities == "video+audio" and model.fusion.input_dims == {"video": 24, "audio": 512}
    out = model(video(), audio(), return_attention=True)
    assert out.species_logits.shape == (2, SPECIES) and out.behavior_logits.shape == (2, BEHAVIORS)
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
        assert torch.equal(model(v, audio()).species_logits, model(v).species_logits)


def test_audio_only_model(audio_encoder):
    model = build(None, audio_encoder)
    assert model.modalities == "audio"
    assert model(audio=audio()).behavior_logits.shape == (2, BEHAVIORS)
    with pytest.raises(ValueError, match="audio model got no input"):
        model(video=video())


def test_audio_none_means_absent_for_the_whole_batch(audio_encoder):
    model = build(CNN3DEncoder(feature_dim=24, width=4), audio_encoder)
    v, a = video(), audio()
    with torch.no_grad():
        without = model(v, None).species_logits
        flagged = model(v, a, audio_present=torch.tensor([False, False])).species_logits
        mixed = model(v, a, audio_present=torch.tensor([False, True])).species_logits
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


def compose(video_option: str, audio_option: str, fusion_option: str):
    """The model config as train.yaml composes it, with the debug-sized overrides."""
    cfg = OmegaConf.create(
        {
            "data": {"num_frames": 4, "image_size": 32},
            "video_encoder": OmegaConf.load(CONF / "video_encoder" / f"{video_option}.yaml"),
            "audio_encoder": OmegaConf.load(CONF / "audio_encoder" / f"{audio_option}.yaml"),
            "fusion": OmegaConf.load(CONF / "fusion" / f"{fusion_option}.yaml"),
            "model": OmegaConf.load(CONF / "model" / "multimodal.yaml"),
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
        cfg.model, num_species=SPECIES, num_behaviors=BEHAVIORS, _execution_whitelist_=["mmbehave.models.*"]
    )
    assert isinstance(model, MultiModalClassifier) and model.modalities == modalities and model.fallbacks == {}
    out = model(video(), audio())
    assert out.species_logits.shape == (2, SPECIES) and out.fused.shape == (2, 32)
    (out.species_logits.logsumexp(-1).sum() + out.behavior_logits.logsumexp(-1).sum()).backward()
    for name, encoder in (("video", model.video_encoder), ("audio", model.audio_encoder)):
        if encoder is not None:
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters()), name
