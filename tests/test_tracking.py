"""Where runs are stored: never relative to the working directory."""

from __future__ import annotations

import mlflow

from mmbehave.core.paths import project_root
from mmbehave.tracking.store import (
    artifact_location,
    ensure_experiment,
    resolve_tracking_uri,
)


def test_tracking_uri_precedence(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{project_root() / 'mlflow.db'}"
    assert resolve_tracking_uri(None).startswith("sqlite:////"), "the default must be an absolute path"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert resolve_tracking_uri(None) == "sqlite:////tmp/elsewhere.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_experiment_artifacts_sit_beside_a_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow would put artifacts in ./mlruns here
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    experiment_id = ensure_experiment(uri, "birds")
    assert ensure_experiment(uri, "birds") == experiment_id


    location = mlflow.MlflowClient(uri).get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert artifact_location("postgresql://db/mlflow") is None
