"""Modality dropout: which clips lose which modality, and a real training epoch with it on."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_SPLITS, compose_config, default_heads

from mmbehave.core.errors import ConfigError
from mmbehave.core.instantiate import build
from mmbehave.data.prepared import make_dataset, make_loader, prepare_data
from mmbehave.data.settings import DataSettings
from mmbehave.domain.config_checks import check_config
from mmbehave.training.loop import StepSettings, train_one_epoch
from mmbehave.training.loss import HeadsLoss
from mmbehave.training.modality_dropout import drop_modalities


def inputs(batch: int, audio_present: list[bool] | None = None) -> dict:
    out = {"video": torch.zeros(batch, 3, 2, 4, 4), "audio": torch.zeros(batch, 1, 8, 8)}
    if audio_present is not None:
        out["audio_present"] = torch.tensor(audio_present)
    return out


def test_each_dropped_clip_loses_exactly_one_modality_at_about_the_asked_rate():
    generator = torch.Generator().manual_seed(0)
    out = drop_modalities(inputs(4000), 0.3, generator)
    video, audio = out["video_present"], out["audio_present"]
    assert not (~video & ~audio).any(), "a clip lost both modalities"
    dropped = (~video | ~audio).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.03)
    assert (~video).float().mean().item() == pytest.approx(0.15, abs=0.03)  # video and audio equally often


def test_a_clip_without_audio_keeps_its_video():
    out = drop_modalities(inputs(6, audio_present=[False] * 3 + [True] * 3), 1.0, torch.Generator().manual_seed(1))
    assert out["video_present"][:3].all()
    assert not out["audio_present"][:3].any()
    assert (out["video_present"][3:] ^ out["audio_present"][3:]).all()  # p=1: each full clip loses exactly one


def test_off_or_one_modality_leaves_the_inputs_alone():
    batch = inputs(3)
    assert drop_modalities(batch, 0.0) is batch
    video_only = {"video": batch["video"]}
    assert drop_modalities(video_only, 0.9) is video_only
    # Out of range: refused by the config check, before any data or model work.
    with pytest.raises(ConfigError, match=r"training.modality_dropout=1.5 must be in \[0.0, 1.0\]"):
        check_config(compose_config(["training.modality_dropout=1.5"]))


def test_a_training_epoch_runs_with_modality_dropout(synthetic_root):
    cfg = compose_config(["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split()])
    modalities = ("video", "audio")
    prepared = prepare_data(DataSettings.from_config(cfg.data), modalities, splits=("train", "val"), heads=default_heads())
    loader = make_loader(make_dataset(prepared, "train", modalities, prepared.classes), 4)
    torch.manual_seed(0)
    model = build(cfg.model, num_classes=prepared.classes.sizes())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = StepSettings(device=torch.device("cpu"), grad_clip_norm=1.0, limit_batches=2, modality_dropout=0.5)
    loss = train_one_epoch(model, loader, loss_fn=HeadsLoss(default_heads()), optimizer=optimizer, scheduler=scheduler,
                           step=step, epoch=0)
    assert torch.isfinite(torch.tensor(loss))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
