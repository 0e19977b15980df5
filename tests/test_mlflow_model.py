"""Trained models in MLflow (``mmbehave/checkpoints/mlflow_models.py``, ``mlflow_pyfunc_model.py``): logged from code with
no pickles, loaded by ``mlflow.pyfunc`` to predict on processed clips, registered, and used by evaluate and
predict through ``model=models:/...`` (in this process on composed configs, and the command line's ``model=``
alias and exit status once); sweeps log only their best trial's (a real multirun). Also the console scripts and
the config tree a run prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import TINY_SPLITS, compose_config, run_here, run_module
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.trained_model import load_trained_model
from mmbehave.data.layout import DatasetLayout

pytestmark = pytest.mark.slow


def processed_batch(root: Path, clip_ids: list[str]) -> dict[str, np.ndarray]:
    layout = DatasetLayout(root)
    return {"frames": np.stack([torch.load(layout.video_frames(c), weights_only=True).numpy() for c in clip_ids]),
            "mel": np.stack([np.load(layout.mel_spectrogram(c)) for c in clip_ids]).astype(np.float32)}


def test_a_runs_best_model_is_an_mlflow_model_from_code_that_predicts(trained_run, synthetic_root, tmp_path):
    from mmbehave.checkpoints.mlflow_models import has_logged_model

    assert has_logged_model(MlflowClient(trained_run.tracking_uri), trained_run.run_id)
    mlflow.set_tracking_uri(trained_run.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{trained_run.run_id}/model", dst_path=str(tmp_path)))
    assert not list(local.rglob("*.pkl")), "a pickled object in the model"
    spec = yaml.safe_load((local / "MLmodel").read_text())
    assert spec["flavors"]["python_function"]["model_code_path"].endswith("mlflow_pyfunc_model.py")
    assert spec["metadata"]["classes"]["species"] == ["badger", "red_deer", "red_fox", "wild_boar"]
    assert "inputs" in spec["signature"]

    clips = ["test_00000", "test_00001", "test_00002"]
    model = mlflow.pyfunc.load_model(f"runs:/{trained_run.run_id}/model")
    table = model.predict(processed_batch(synthetic_root, clips))
    assert list(table.columns[:4]) == ["species", "species_prob", "behavior", "behavior_prob"] and len(table) == 3
    # What the checkpoint itself predicts for the same clips, as evaluate computes it.
    trained = load_trained_model(trained_run.checkpoint)
    batch = processed_batch(synthetic_root, clips)
    video = torch.from_numpy(batch["frames"]).permute(0, 2, 1, 3, 4).float() / 255
    audio = ((torch.from_numpy(batch["mel"]) - trained.mel_mean) / trained.mel_std).unsqueeze(1)
    with torch.no_grad():
        expected = torch.softmax(trained.model(video=video, audio=audio).logits["species"], -1).numpy()
    np.testing.assert_allclose(table["species_prob"].to_numpy(), expected.max(axis=1), rtol=1e-5)
    assert list(table["species"]) == [trained.classes["species"][i] for i in expected.argmax(axis=1)]


def test_a_registered_model_serves_evaluate_and_predict(trained_run, synthetic_root, tmp_path):
    mlflow.set_tracking_uri(trained_run.tracking_uri)
    version = mlflow.register_model(f"runs:/{trained_run.run_id}/model", "mmbehave-test").version
    uri = f"models:/mmbehave-test/{version}"
    out = tmp_path / "predictions.csv"
    run_here("predict", f"model_uri={uri}", f"input={synthetic_root / 'raw' / 'videos' / 'test_00000.mp4'}",
             f"output={out}", tmp_path=tmp_path, run="predict", env=trained_run.env)
    assert len(pd.read_csv(out)) == 1
    result = run_here("evaluate", f"model_uri={uri}", f"output_dir={tmp_path / 'eval'}", "attention.num_clips=0",
                      "mlflow.log=false", tmp_path=tmp_path, run="evaluate", env=trained_run.env)
    assert "test/macro_f1 = " in result.output
    # On the command line `model=<uri>` means model_uri (not the model config group); an unknown model is one line.
    missing = run_module("mmbehave.predict", "model=models:/no-such-model/1", f"input={out}", f"hydra.run.dir={tmp_path / 'x'}",
                         tmp_path=tmp_path, env=trained_run.env, check=False)
    assert missing.returncode == 2 and "model=models:/no-such-model/1: no such MLflow model" in missing.stderr


def test_a_sweep_logs_and_registers_only_its_best_trials_model(tmp_path, synthetic_root):
    run_module("mmbehave.train", "hparams_search=mbt", "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
               "training.limit_train_batches=1", "training.limit_val_batches=1", "hydra.sweeper.n_trials=2",
               f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", "mlflow.registered_model_name=mbt-best",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", tmp_path=tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    parent = next(r for r in runs if "sweeper" in r.data.tags)
    from mmbehave.checkpoints.mlflow_models import has_logged_model

    with_model = [r.info.run_id for r in runs if has_logged_model(client, r.info.run_id)]
    assert with_model == [parent.data.tags["best_run_id"]]
    versions = client.search_model_versions("name = 'mbt-best'")
    assert [v.run_id for v in versions] == with_model


def test_console_scripts_behave_like_python_m(tmp_path):
    script = Path(sys.executable).with_name("mmbehave-train")
    by_script = subprocess.run([str(script), "fusion.num_layers=3", "--cfg", "job"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=120, env={**os.environ})
    by_module = subprocess.run([sys.executable, "-m", "mmbehave.train", "fusion.num_layers=3", "--cfg", "job"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert by_script.returncode == 0 and by_script.stdout == by_module.stdout and "num_layers: 3" in by_script.stdout


def test_a_run_prints_its_config_as_a_tree(capsys):
    from mmbehave.training.config_tree import print_config_tree

    print_config_tree(compose_config(["mlflow.tracking_uri=http://u:secret@h"]))
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    sections = [line.split("── ")[1].strip() for line in lines if line[:4] in ("├── ", "└── ")]
    assert lines[0] == "config" and sections[:4] == ["data", "video_encoder", "audio_encoder", "fusion"]
    assert "hydra" not in sections and "mlflow" in sections
    assert "num_bottlenecks: 4" in stdout and "secret" not in stdout and "u:***@h" in stdout
