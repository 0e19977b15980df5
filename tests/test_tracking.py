"""Where runs are stored: never relative to the working directory, and never a deleted file."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3

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


def test_a_store_deleted_and_made_again_in_one_process_is_the_new_file(tmp_path):
    """A notebook that deletes its store and trains again: MLflow's cached connections to the deleted file must not
    be what it reads (the old runs) and writes through (refused: "attempt to write a readonly database")."""
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    ensure_experiment(uri, "before")
    assert mlflow.MlflowClient(uri).get_experiment_by_name("before") is not None  # the engine is cached now
    shutil.rmtree(store)
    store.mkdir()
    ensure_experiment(uri, "after")
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment_by_name("before") is None, "read the deleted store"
    client.create_run(client.get_experiment_by_name("after").experiment_id)
    with contextlib.closing(sqlite3.connect(store / "mlflow.db")) as db:
        on_disk = {name for (name,) in db.execute("SELECT name FROM experiments")}
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert on_disk == {"Default", "after"} and runs == 1, "the new store on disk lacks what was just logged"
