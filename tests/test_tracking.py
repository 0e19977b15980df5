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
    forget_store,
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


def test_the_mlflow_internals_forget_store_closes_are_still_there(tmp_path):
    """tracking/store.py closes MLflow's cached engines and stores by private names (MLflow offers no public
    way); a release that renames them fails here, by name, instead of a stale store deep in a test session."""
    from mmbehave.tracking.store import mlflow_caches

    caches = mlflow_caches()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # opens an engine and a store for the URI
    for store_class in caches.store_classes:
        assert hasattr(store_class, "_engine_map_lock"), f"{store_class.__module__}: _engine_map_lock is gone"
        assert isinstance(store_class._engine_map, dict), f"{store_class.__module__}: _engine_map is gone"
    assert uri in caches.store_classes[0]._engine_map, "MLflow no longer keeps its engine in _engine_map"
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    assert hasattr(tracking_utils, "_tracking_store_registry") and hasattr(registry_utils, "_model_registry_store_registry")
    assert caches.clear_store_caches and all(callable(clear) for clear in caches.clear_store_caches)
    forget_store(uri)
    assert uri not in caches.store_classes[0]._engine_map
