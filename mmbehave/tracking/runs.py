"""What every MLflow run logs, and how a run ends (the store itself: ``tracking.store``)."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

from mmbehave.core.config_record import ConfigRecord
from mmbehave.core.errors import TrackingError
from mmbehave.core.paths import project_root
from mmbehave.core.redact import redact
from mmbehave.core.signals import RunInterrupted, signals_held
from mmbehave.domain.folds import fold_tags
from mmbehave.models.pretrained import pretrained_weight_tags
from mmbehave.tracking.store import (
    check_server_answers,
    ensure_experiment,
    prepare_store,
    store_errors_in_one_line,
)

log = logging.getLogger(__name__)

# Hydra's own settings and the paths block say nothing about the model; they would only clutter the UI.
UNLOGGED_TOP_LEVEL_KEYS = ("hydra", "paths")
MLFLOW_PARAM_MAX_CHARS = 6000


def flatten_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """Resolved config (a DictConfig, or a record's resolved dict) as ``{"fusion.num_layers": 4, ...}``; lists
    become their string form."""
    container = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            text = node if isinstance(node, (int, float, bool)) or node is None else redact(str(node))
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
        self._end_status: RunStatus | None = None

    def end_as(self, status: str, tags: dict[str, Any] | None = None) -> None:
        """End the run with ``status`` (e.g. KILLED for a pruned trial) rather than FINISHED, if nothing fails."""
        self._end_status = RunStatus.from_string(status)
        if tags:
            self.set_tags(tags)

    def __enter__(self) -> "TrackedRun":
        prepare_store(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.active_run() is not None:  # a previous job in this process left one open: close it
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        with signals_held(), store_errors_in_one_line(self.tracking_uri, "open the run"):
            if self.resume_run_id:
                run = mlflow.start_run(run_id=self.resume_run_id)
            else:
                mlflow.set_experiment(experiment_id=ensure_experiment(self.tracking_uri, self.experiment_name))
                run = mlflow.start_run(run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        log.info("MLflow run %s in %s (experiment '%s')", self.run_id, redact(self.tracking_uri), self.experiment_name)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        with signals_held():  # a second Ctrl-C must not leave the run RUNNING
            self._end(exc_type, exc)
        return False

    def _end(self, exc_type, exc) -> None:
        if exc_type is None:
            status = self._end_status or RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
            if isinstance(exc, RunInterrupted):
                mlflow.set_tags({"killed_by": exc.signal_name, "failure_reason": redact(f"stopped by {exc}")[:5000]})
        else:
            status = RunStatus.FAILED
            mlflow.set_tag("failure_reason", redact(f"{exc_type.__name__}: {exc}")[:5000])
        for path in self.artifacts_at_end:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
        mlflow.end_run(RunStatus.to_string(status))

    def log_params(self, params: dict[str, Any]) -> None:
        with signals_held():
            mlflow.log_params(params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        with signals_held():
            mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        with signals_held():
            mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path) -> None:
        with signals_held():
            mlflow.log_artifact(str(path))

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        with signals_held():
            mlflow.log_artifacts(str(folder), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        with signals_held():
            mlflow.log_text(text, artifact_file)


class SilentRun:
    """What a process other than rank 0 holds instead of the MLflow run under torchrun: the same calls, which
    do nothing (rank 0 logs the run), and the run's id (for the checkpoint record)."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.artifacts_at_end: list[Path] = []

    def end_as(self, status: str, tags: dict[str, Any] | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path) -> None:
        pass

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass


def hydra_overrides() -> str:
    """The command line's overrides, as one string (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    return " ".join(HydraConfig.get().overrides.task) if HydraConfig.initialized() else ""


def hydra_command(default: str = "train") -> str:
    """The command Hydra is running (train, distill, ...): its config's name; ``default`` outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().job.config_name or default) if HydraConfig.initialized() else default


def log_run_setup(tracker: TrackedRun, record: ConfigRecord, model, classes, run_dir: Path, modalities,
                  extra_params: dict | None = None) -> None:
    """What a new training run records once: every config value as a param (plus ``extra_params``, such as
    which feature caches it reads), parameter counts, tags (overrides, commit, folder, fold, pretrained-weight
    fallbacks), the resolved config and the class lists."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tracker.log_params({**flatten_config(record.resolved), "modalities": "+".join(modalities),
                        "num_params_total": total, "num_params_trainable": trainable, **(extra_params or {})})
    tracker.set_tags({"hydra_overrides": redact(hydra_overrides()), "git_commit": git_commit(), "run_dir": str(run_dir),
                      **fold_tags(record.section("data").get("labels_dir")),
                      **{f"fallback.{name}": reason for name, reason in model.fallbacks.items()},
                      **pretrained_weight_tags(record.resolved)})
    tracker.log_text(record.yaml(), "config.yaml")
    tracker.log_text(json.dumps(classes.to_dict(), indent=2), "classes.json")
    log.info("Model: %s, %s parameters (%s trainable)", "+".join(modalities), f"{total:,}", f"{trainable:,}")


def log_to_finished_run(tracking_uri: str, run_id: str | None, metrics: dict[str, float], step: int,
                        artifacts: Path | list[Path], artifact_path: str) -> bool:
    """Add metrics and files (a folder's contents, or a list of files) to a training's MLflow run under
    ``artifact_path``, leaving the run's status as it was (evaluate, export). False, with a warning, if the
    run is not in the store."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    try:
        check_server_answers(tracking_uri)
    except TrackingError as error:  # the results are on disk already: say where, do not fail
        log.warning("%s Results are in %s only.", error, artifacts if isinstance(artifacts, Path) else artifacts[0].parent)
        return False
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        client.get_run(run_id)
    except (MlflowException, TypeError):
        log.warning("The model's training run %s is not in the MLflow store %s: results are in %s only "
                    "(set mlflow.tracking_uri to the store it was trained with to log them there).", run_id, tracking_uri,
                    artifacts if isinstance(artifacts, Path) else artifacts[0].parent)
        return False
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, float(value), now, step) for key, value in metrics.items()])
    if isinstance(artifacts, Path):
        client.log_artifacts(run_id, str(artifacts), artifact_path=artifact_path)
    else:
        for path in artifacts:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    log.info("Logged %d metrics and the reports (artifacts %s/) to MLflow run %s", len(metrics), artifact_path, run_id)
    return True
