"""MLflow tracking: where the store is, what every run logs, and how a run ends.

The store defaults to a SQLite file at the project root given as an absolute URI: Hydra may change the
working directory, and MLflow 3 refuses the old ./mlruns file store.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

from mmbehave.paths import project_root

log = logging.getLogger(__name__)

# Hydra's own settings and the paths block say nothing about the model; they would only clutter the UI.
UNLOGGED_TOP_LEVEL_KEYS = ("hydra", "paths")
MLFLOW_PARAM_MAX_CHARS = 6000


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None) -> str:
    """config ``mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's SQLite file."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite store (``<store dir>/mlartifacts``). MLflow's own default is ``./mlruns``
    of whatever directory the experiment happened to be created from; servers choose their own."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The experiment's id, creating it (with a fixed artifact location) if needed; safe under races."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    except mlflow.exceptions.MlflowException:  # another process created it first
        return client.get_experiment_by_name(name).experiment_id


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """Resolved config as ``{"fusion.num_layers": 4, ...}``; lists become their string form."""
    container = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            text = node if isinstance(node, (int, float, bool)) or node is None else str(node)
            flat[prefix] = str(text)[:MLFLOW_PARAM_MAX_CHARS] if not isinstance(text, (int, float)) else text

    for key, value in container.items():
        if key not in UNLOGGED_TOP_LEVEL_KEYS:
            walk(value, key)
    return flat


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class TrackedRun:
    """Context manager around one MLflow run: starts (or re-opens, for resume) it, and always ends it with
    FINISHED, FAILED (with the reason as a tag) or KILLED (Ctrl-C), so no run stays active into the next
    job of a multirun."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str | None = None,
                 run_id: str | None = None, tags: dict[str, str] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.resume_run_id = run_id
        self.tags = tags or {}
        self.run_id: str | None = None
        self.artifacts_at_end: list[Path] = []

    def __enter__(self) -> "TrackedRun":
        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.active_run() is not None:  # a previous job in this process left one open: close it
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        if self.resume_run_id:
            run = mlflow.start_run(run_id=self.resume_run_id)
        else:
            mlflow.set_experiment(experiment_id=ensure_experiment(self.tracking_uri, self.experiment_name))
            run = mlflow.start_run(run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        log.info("MLflow run %s in %s (experiment '%s')", self.run_id, self.tracking_uri, self.experiment_name)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
            mlflow.set_tag("failure_reason", f"{exc_type.__name__}: {exc}"[:5000])
        for path in self.artifacts_at_end:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
        mlflow.end_run(RunStatus.to_string(status))
        return False

    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params(params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path) -> None:
        mlflow.log_artifact(str(path))

    def log_text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file)
