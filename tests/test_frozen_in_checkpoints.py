"""Frozen pretrained encoders named in checkpoints instead of copied (``training.frozen_in_checkpoints=reference``,
``mmbehave/checkpoints/frozen_weights.py``): small files that load, resume and predict as the full ones do, a
refusal in one line when the named weights changed or are gone, and an MLflow model that holds every weight."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers import TINY_SPLITS, frozen_pretrained_encoders, train_here, user_error
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.checkpoints.mlflow_models import local_checkpoint
from mmbehave.checkpoints.trained_model import load_trained_model


def outputs(trained, seed: int = 0) -> dict[str, torch.Tensor]:
    """The model's logits on a fixed random batch of its input shapes."""
    generator = torch.Generator().manual_seed(seed)
    settings = trained.preprocess
    video = torch.rand(2, 3, settings.num_frames, settings.image_size, settings.image_size, generator=generator)
    audio = torch.randn(2, 1, settings.n_mels, 51, generator=generator)
    with torch.no_grad():
        return trained.model(video=video, audio=audio).logits


@pytest.mark.slow
def test_named_frozen_encoders_make_small_checkpoints_that_load_resume_and_refuse_changed_weights(tmp_path,
                                                                                              synthetic_root):
    weights = frozen_pretrained_encoders(tmp_path / "weights")
    overrides = ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), *weights,
                 "training.feature_cache=true", f"training.feature_cache_dir={tmp_path / 'cache'}",
                 "training.frozen_in_checkpoints=reference", "mlflow.log_model=true"]
    train_here(tmp_path, *overrides, "training.num_epochs=2")
    best, latest = tmp_path / "run" / "checkpoints" / "best.pth", tmp_path / "run" / "checkpoints" / "latest.pth"
    for path in (best, latest):
        checkpoint = read_checkpoint(path)
        assert set(checkpoint["frozen_weights"]) == {"video_encoder", "audio_encoder"}
        assert not [key for key in checkpoint["model"] if key.startswith(("video_encoder.", "audio_encoder."))]
    # ResNet18 alone is ~45 MB; the file keeps the fusion and heads only.
    assert best.stat().st_size < (tmp_path / "weights" / "resnet18.pth").stat().st_size / 4

    named = load_trained_model(best)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    logged = local_checkpoint(f"runs:/{run.info.run_id}/model", f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "dl")
    full = read_checkpoint(logged)
    assert "frozen_weights" not in full and any(key.startswith("video_encoder.backbone.") for key in full["model"])
    for head, logits in outputs(named).items():
        torch.testing.assert_close(logits, outputs(load_trained_model(logged))[head])

    resumed = train_here(tmp_path, *overrides, "training.num_epochs=3", f"resume={latest}", run="resumed")
    assert "Resumed from" in resumed.output and read_checkpoint(latest)["epoch"] == 2

    # Other weights at the named place: refused, naming the place and the way out.
    torch.save({k: v + 1 for k, v in torch.load(tmp_path / "weights" / "resnet18.pth").items()},
               tmp_path / "weights" / "resnet18.pth")
    message = user_error(lambda: load_trained_model(best))
    assert "audio_encoder" in message and str(tmp_path / "weights" / "resnet18.pth") in message
    assert "not the ones it was trained with" in message and "runs:/" in message
    # No weights there at all: refused the same way; the logged MLflow model still loads (it holds every weight).
    shutil.rmtree(tmp_path / "weights")
    message = user_error(lambda: load_trained_model(best))
    assert "could not be loaded from" in message and str(tmp_path / "weights" / "videomae") in message
    for head, logits in outputs(named).items():
        torch.testing.assert_close(logits, outputs(load_trained_model(logged))[head])
