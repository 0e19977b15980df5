"""Pretrained weights: local directories and files load exactly; missing weights fail fast, loudly and helpfully.

No test touches the network: checkpoints are tiny models saved into tmp dirs, and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.models import resnet18
from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

from mmbehave.models import pretrained
from mmbehave.models.audio_encoders import build_resnet18_audio_encoder
from mmbehave.models.cnn3d import IMAGENET_MEAN, CNN3DEncoder
from mmbehave.models.pretrained import PretrainedWeightsError, load_hf_pretrained
from mmbehave.models.video_encoders import VideoMAEEncoder, build_videomae_encoder

CONF = Path(__file__).resolve().parents[1] / "conf"
MISSING = "mmbehave-test/no-such-videomae"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def videomae(model_name: str, on_load_failure: str = "fallback", num_frames: int = 4):
    return build_videomae_encoder(
        model_name=model_name, pretrained=True, freeze_backbone=False, on_load_failure=on_load_failure,
        num_frames=num_frames, image_size=32, fallback_feature_dim=48,
    )


@pytest.fixture(scope="module")
def videomae_dir(tmp_path_factory) -> tuple[Path, VideoMAEModel]:
    """A tiny VideoMAE checkpoint for 8 frames, with a processor config holding a custom mean / std."""
    path = tmp_path_factory.mktemp("videomae")
    config = VideoMAEConfig(
        num_frames=8, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64,
    )
    model = VideoMAEModel(config).eval()
    model.save_pretrained(path)
    VideoMAEImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.6, 0.7]).save_pretrained(path)
    return path, model


def test_videomae_from_local_directory(videomae_dir):
    path, saved = videomae_dir
    encoder = videomae(str(path), on_load_failure="raise", num_frames=4).eval()
    assert isinstance(encoder, VideoMAEEncoder) and encoder.fallback_reason is None
    weight = "encoder.layer.0.attention.attention.query.weight"
    assert torch.equal(encoder.backbone.state_dict()[weight], saved.state_dict()[weight])
    assert torch.allclose(encoder.normalize.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(encoder.normalize.std.flatten(), torch.tensor([0.5, 0.6, 0.7]))
    # num_frames comes from the data (4), not the checkpoint (8): fixed sinusoidal positions are recomputed
    assert encoder(torch.rand(1, 3, 4, 32, 32)).shape == (1, 2 * 4 * 4, 32)


def test_videomae_directory_without_processor_uses_imagenet(videomae_dir, tmp_path):
    _, saved = videomae_dir
    saved.save_pretrained(tmp_path)
    encoder = videomae(str(tmp_path), on_load_failure="raise", num_frames=8)
    assert torch.allclose(encoder.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))


def test_missing_videomae_falls_back_fast_and_loudly():
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="PRETRAINED WEIGHTS MISSING"):
        encoder = videomae(MISSING)
    assert time.monotonic() - start < 10
    assert isinstance(encoder, CNN3DEncoder) and encoder.output_dim == 48
    assert MISSING in encoder.fallback_reason and "cnn3d" in encoder.fallback_reason
    assert "\n" not in encoder.fallback_reason
    assert encoder(torch.rand(1, 3, 4, 32, 32)).shape == (1, 2 * 2 * 2, 48)


def test_missing_videomae_raise_says_how_to_fix():
    with pytest.raises(PretrainedWeightsError) as info:
        videomae(MISSING, on_load_failure="raise")
    message = str(info.value)
    for fix in (MISSING, "pretrained=false", "HF_HOME", "model_name", "on_load_failure=fallback", "download"):
        assert fix in message
    with pytest.raises(PretrainedWeightsError, match="no such local directory: /no/such/dir"):
        videomae("/no/such/dir", on_load_failure="raise")


def test_videomae_base_config_offline_falls_back_to_matching_width():
    base = OmegaConf.load(CONF / "video_encoder" / "videomae_base.yaml")
    cfg = OmegaConf.create({"data": {"num_frames": 4, "image_size": 32}, "encoder": base})
    cfg.encoder.model_name = MISSING  # the real id could be in a developer's cache; this one never is
    with pytest.warns(RuntimeWarning):
        encoder = instantiate(cfg.encoder, _execution_whitelist_=["mmbehave.models.*"])
    assert isinstance(encoder, CNN3DEncoder) and encoder.output_dim == 768 and encoder.fallback_reason


def test_policy_never_probes_when_offline_and_probes_once_otherwise(monkeypatch):
    calls = []

    def loader(name, local_files_only=False, **kwargs):
        calls.append(local_files_only)
        raise OSError("not cached")

    def no_probe(url, timeout=3.0):
        raise AssertionError("probed the network under HF_HUB_OFFLINE")

    monkeypatch.setattr(pretrained, "probe_host", no_probe)
    with pytest.raises(PretrainedWeightsError, match="HF_HUB_OFFLINE"):
        load_hf_pretrained(loader, "org/model")
    assert calls == [True]

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(pretrained, "probe_host", lambda url, timeout=3.0: "Name or service not known")
    with pytest.raises(PretrainedWeightsError, match="unreachable \\(Name or service not known\\)"):
        load_hf_pretrained(loader, "org/model")
    assert calls == [True, True]  # still only the local attempt: no download tried after a failed probe


def test_probe_fails_fast_on_a_closed_port():
    start = time.monotonic()
    assert pretrained.probe_host("http://127.0.0.1:9", timeout=3.0) is not None
    assert time.monotonic() - start < 3.5


@pytest.fixture(scope="module")
def resnet_state_dict() -> dict[str, torch.Tensor]:
    state = resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.arange(state["conv1.weight"].numel(), dtype=torch.float32).view(64, 3, 7, 7)
    return state


def test_resnet_audio_weights_from_local_file(tmp_path, resnet_state_dict):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet_state_dict, path)
    encoder = build_resnet18_audio_encoder(True, False, "raise", weights_path=str(path))
    assert encoder.fallback_reason is None
    conv1 = encoder.backbone.conv1.weight
    assert conv1.shape == (64, 1, 7, 7)
    assert torch.equal(conv1, resnet_state_dict["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(encoder.backbone.layer4[1].conv2.weight, resnet_state_dict["layer4.1.conv2.weight"])


def test_resnet_audio_weights_from_torch_hub_cache(tmp_path, monkeypatch, resnet_state_dict):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setattr(pretrained, "probe_host", lambda url, timeout=3.0: "offline in tests")
    with pytest.warns(RuntimeWarning, match="torch hub cache"):
        assert build_resnet18_audio_encoder(True, False, "fallback").fallback_reason
    cached = pretrained.resnet18_cache_path()
    assert cached.parent == tmp_path / "checkpoints"
    cached.parent.mkdir()
    torch.save({"state_dict": resnet_state_dict}, cached)  # a wrapped state_dict is accepted too
    encoder = build_resnet18_audio_encoder(True, True, "raise")
    assert encoder.fallback_reason is None and not encoder.backbone.conv1.weight.requires_grad
    assert torch.equal(encoder.backbone.layer1[0].conv1.weight, resnet_state_dict["layer1.0.conv1.weight"])


def test_resnet_audio_missing_or_bad_weights(tmp_path):
    missing = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(PretrainedWeightsError) as info:
        build_resnet18_audio_encoder(True, False, "raise", weights_path=str(missing))
    assert str(missing) in str(info.value) and "audio_encoder.pretrained=false" in str(info.value)

    with pytest.warns(RuntimeWarning, match="PRETRAINED WEIGHTS MISSING"):
        encoder = build_resnet18_audio_encoder(True, False, "fallback", weights_path=str(missing))
    assert str(missing) in encoder.fallback_reason and "random init" in encoder.fallback_reason

    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="could not be read"):
        build_resnet18_audio_encoder(True, False, "raise", weights_path=str(garbage))
    wrong = tmp_path / "not_resnet18.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(PretrainedWeightsError, match="Error\\(s\\) in loading state_dict"):
        build_resnet18_audio_encoder(True, False, "raise", weights_path=str(wrong))
    with pytest.raises(ValueError, match="audio_encoder.on_load_failure"):
        build_resnet18_audio_encoder(True, False, "retry")


def test_videomae_on_another_grid_keeps_the_checkpoints_space_time_layout(videomae_dir):
    from transformers.models.videomae.modeling_videomae import (
        get_sinusoid_encoding_table,
    )

    from mmbehave.models.video_encoders import token_grid

    path, saved = videomae_dir  # trained for 8 frames of 32 px: a (4, 4, 4) grid of tubelets
    encoder = build_videomae_encoder(model_name=str(path), pretrained=True, freeze_backbone=False,
                                     on_load_failure="raise", num_frames=16, image_size=64).eval()
    native = get_sinusoid_encoding_table(64, 32).reshape(4, 4, 4, 32)
    resized = encoder.position_table.reshape(*token_grid(encoder.backbone.config), 32)
    assert resized.shape == (8, 8, 8, 32)
    for corner in [(0, 0, 0), (0, 0, -1), (0, -1, 0), (-1, 0, 0), (-1, -1, -1)]:
        torch.testing.assert_close(resized[corner], native[corner])  # the same place and time as in the checkpoint
    # VideoMAE's own table for the new grid would put the first token of the second frame row elsewhere.
    flat = get_sinusoid_encoding_table(512, 32).reshape(8, 8, 8, 32)
    assert not torch.allclose(flat[0, 0, -1], native[0, 0, -1])

    # The positions travel with the weights: a model rebuilt from config (as evaluate and predict do) uses them.
    video = torch.rand(1, 3, 16, 64, 64)
    with torch.no_grad():
        expected = encoder(video)
        rebuilt = build_videomae_encoder(model_name=None, pretrained=False, freeze_backbone=False,
                                         on_load_failure="raise", num_frames=16, image_size=64, patch_size=8,
                                         hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
        rebuilt.load_state_dict(encoder.state_dict())
        torch.testing.assert_close(rebuilt.eval()(video), expected)
    same_grid = build_videomae_encoder(model_name=str(path), pretrained=True, freeze_backbone=False,
                                       on_load_failure="raise", num_frames=8, image_size=32)
    assert "position_table" not in same_grid.state_dict()  # nothing to resize: VideoMAE's own table


def test_freezing_is_refused_where_it_would_freeze_random_weights(tmp_path):
    from helpers import compose_config

    from mmbehave.core.errors import ConfigError
    from mmbehave.domain.config_checks import check_config

    for group in ("video_encoder", "audio_encoder"):
        with pytest.raises(ConfigError, match=f"{group}.freeze_backbone=true with {group}.pretrained=false"):
            check_config(compose_config([f"{group}.freeze_backbone=true"]))
    # Pretrained asked for, but the weights cannot be had: no silent fallback to frozen random features.
    with pytest.raises(PretrainedWeightsError, match="freeze_backbone=true needs these weights"):
        build_videomae_encoder(model_name=MISSING, pretrained=True, freeze_backbone=True, on_load_failure="fallback",
                               num_frames=4, image_size=32)
    with pytest.raises(PretrainedWeightsError, match="freeze_backbone=true needs these weights"):
        build_resnet18_audio_encoder(pretrained=True, freeze_backbone=True, on_load_failure="fallback",
                                     weights_path=str(tmp_path / "missing.pth"))
