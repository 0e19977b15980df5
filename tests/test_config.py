"""Every option of every config group composes and builds; the guide preset is the original guide's config;
bad values fail at start with the key in the message."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config, hydra_dir_override, run_module

from mmbehave.core.errors import ConfigError
from mmbehave.core.instantiate import build
from mmbehave.core.paths import config_dir, project_root
from mmbehave.domain.config_checks import check_config, configured_modalities

# Small sizes so that every option builds in well under a second.
TINY = ["data.num_frames=4", "data.image_size=32", "fusion.hidden_dim=32", "fusion.num_layers=2"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def build_model(cfg, num_species=3, num_behaviors=4):
    return build(cfg.model, num_classes={"species": num_species, "behavior": num_behaviors})


@pytest.mark.parametrize("option", group_options("video_encoder"))
def test_every_video_encoder_option_builds(option):
    overrides = [f"video_encoder={option}", *TINY]
    if option == "videomae_base":  # base sizes, random init: no download in tests
        overrides += ["video_encoder.pretrained=false", "video_encoder.num_layers=1"]
    cfg = compose_config(overrides)
    model = build_model(cfg)
    expected = "audio" if option == "none" else "video+audio"
    assert model.modalities == expected
    if option != "none" and option != "videomae_base":
        video = torch.rand(2, 3, 4, 32, 32)
        audio = torch.randn(2, 1, 64, 101)
        out = model(video=video, audio=audio)
        assert out.logits["species"].shape == (2, 3) and out.logits["behavior"].shape == (2, 4)


@pytest.mark.parametrize("option", group_options("audio_encoder"))
def test_every_audio_encoder_option_builds(option):
    model = build_model(compose_config([f"audio_encoder={option}", *TINY]))
    assert model.modalities == ("video" if option == "none" else "video+audio")


@pytest.mark.parametrize("option", group_options("fusion"))
def test_every_fusion_option_builds_and_runs(option):
    model = build_model(compose_config([f"fusion={option}", *TINY]))
    out = model(video=torch.rand(2, 3, 4, 32, 32), audio=torch.randn(2, 1, 64, 101))
    assert out.fused.shape == (2, 32)


@pytest.mark.parametrize("option", group_options("optimizer"))
def test_every_optimizer_option_builds_with_trainable_parameters(option):
    cfg = compose_config([f"optimizer={option}"])
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = build(cfg.optimizer)(params=params)
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


def test_adamw_option_is_the_seeds_and_the_quickstart_raises_its_rate():
    from omegaconf import OmegaConf

    adamw = OmegaConf.load(config_dir() / "optimizer" / "adamw.yaml")
    assert adamw._target_ == "torch.optim.AdamW"
    assert adamw.lr == 1e-4 and adamw.weight_decay == 1e-5
    cfg = compose_config()  # tiny models from scratch: conf/train.yaml sets a larger step
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 1e-3


@pytest.mark.parametrize("group", ["hardware", "data", "debug", "experiment"])
def test_other_groups_compose(group):
    for option in group_options(group):
        cfg = compose_config([f"{group}={option}"])
        check_config_unless_cuda(cfg)


def check_config_unless_cuda(cfg):
    if str(cfg.hardware.device).startswith("cuda") and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="hardware.device"):
            check_config(cfg)
    else:
        check_config(cfg)


def test_guide_preset_is_the_original_guides_config():
    cfg = compose_config(["experiment=guide"])
    assert cfg.video_encoder.model_name == "MCG-NJU/videomae-base-finetuned-kinetics"
    assert cfg.video_encoder.pretrained is True and cfg.video_encoder.freeze_backbone is False
    assert cfg.video_encoder.hidden_size == 768  # video_feature_dim
    assert cfg.audio_encoder.pretrained is True and cfg.audio_encoder.freeze_backbone is False
    assert (cfg.fusion.hidden_dim, cfg.fusion.num_layers, cfg.fusion.num_heads, cfg.fusion.dropout) == (512, 2, 8, 0.1)
    assert (cfg.training.num_epochs, cfg.training.batch_size) == (50, 8)
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (1e-4, 1e-5)
    assert (cfg.data.num_frames, cfg.data.image_size) == (16, 224)
    assert cfg.hardware.device == "cuda"


def test_guide_preset_instantiates_without_downloads():
    cfg = compose_config(["experiment=guide", "video_encoder.pretrained=false", "audio_encoder.pretrained=false"])
    model = build_model(cfg, 5, 7)
    assert model.video_encoder.output_dim == 768  # video_feature_dim
    assert model.audio_encoder.output_dim == 512  # audio_feature_dim
    assert model.fusion.hidden_dim == 512
    assert model.fallbacks == {}


def test_paths_resolve_against_the_project_root_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config()
    assert cfg.paths.root == str(project_root())
    assert cfg.data.root == str(project_root() / "data" / "synthetic" / "seed_0")


def test_configured_modalities_follow_the_encoder_groups():
    assert configured_modalities(compose_config()) == ("video", "audio")
    assert configured_modalities(compose_config(["audio_encoder=none"])) == ("video",)
    assert configured_modalities(compose_config(["video_encoder=none"])) == ("audio",)


@pytest.mark.parametrize("overrides, key", [
    (["fusion.hidden_dim=100", "fusion.num_heads=8"], "fusion.hidden_dim=100 is not divisible by fusion.num_heads=8"),
    (["video_encoder=none", "audio_encoder=none"], "video_encoder=none and audio_encoder=none"),
    (["training.batch_size=0"], "training.batch_size=0"),
    (["hardware.precision=fp8"], "hardware.precision=fp8"),
    (["resume=/nonexistent/latest.pth"], "resume=/nonexistent/latest.pth"),
    (["training.batch_size=eight"], "training.batch_size='eight' must be an integer"),
    (["training.num_epochs=2.5"], "training.num_epochs=2.5 must be an integer"),
    (["training.grad_clip_norm=true"], "training.grad_clip_norm=True must be a number"),
    (["training.monitor_mode=maximum"], "training.monitor_mode=maximum is not one of max, min"),
    (["training.monitor=macro_f1"], "training.monitor=macro_f1 is not an epoch metric"),
    (["training.early_stopping_patience=0"], "training.early_stopping_patience=0 must be at least 1"),
    (["optimizer.lr=0"], "optimizer.lr=0 must be a positive number"),
    (["optimizer.lr=-1e-3"], "optimizer.lr=-0.001 must be a positive number"),
    (["training.lr_schedule.min_lr_ratio=2"], "training.lr_schedule.min_lr_ratio=2 must be in [0.0, 1.0]"),
    (["hardware.num_workers=-1"], "hardware.num_workers=-1 must be at least 0"),
    (["video_encoder.input_norm=daily"], "video_encoder.input_norm=daily is not one of fixed, clip"),
])
def test_wrong_values_fail_with_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        check_config(compose_config(overrides))
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_reports_a_bad_value_in_one_line_before_any_work(tmp_path):
    result = run_module("mmbehave.train", "fusion.num_heads=3", *hydra_dir_override(tmp_path),
                        tmp_path=tmp_path, check=False, timeout=120)
    assert result.returncode != 0
    assert "fusion.hidden_dim=128 is not divisible by fusion.num_heads=3" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_unknown_option_names_the_group(tmp_path):
    result = run_module("mmbehave.train", "fusion=transformer", *hydra_dir_override(tmp_path),
                        tmp_path=tmp_path, check=False, timeout=120)
    assert result.returncode != 0
    assert "fusion" in result.stderr and "transformer" in result.stderr
