"""``resume=``: continue a run only when it can be continued, and never damage it trying.

Everything here runs before the original run's folder is written or its MLflow run reopened, so a refused
resume leaves a FINISHED run FINISHED:

    checkpoint (keys and types checked) ─► same model, modalities, classes, preprocessing as the config?
        ─► MLflow has no epoch after the checkpoint's? ─► reopen the run, restore, log what MLflow lacks

Metrics reach MLflow after the epoch's checkpoint is saved, so a run killed in between is one epoch behind
in MLflow, never ahead: ``backfill_history`` logs what is missing, and every epoch is logged exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmbehave.core.config_record import ConfigRecord
from mmbehave.core.errors import ConfigError
from mmbehave.data.prepared import PreparedData
from mmbehave.tracking.runs import TrackedRun
from mmbehave.tracking.store import check_server_answers

log = logging.getLogger(__name__)
SHOWN_DIFFERENCES = 6


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{key}: {old.get(key)} -> {new.get(key)}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def check_resumable(record: ConfigRecord, resume: Path, checkpoint: dict, prepared: PreparedData,
                    modalities: tuple[str, ...]) -> None:
    """ConfigError naming what differs between the checkpoint's run (``resume``) and this config (its record: the
    model's nodes and training keys): the model (architecture), the modalities, the class lists or the
    preprocessing of the data."""
    stored = OmegaConf.create(checkpoint["config"])
    found: list[str] = []
    if "model" in stored:
        found += differences(flat(OmegaConf.to_container(stored.model, resolve=True), "model"),
                             flat(record.section("model"), "model"))
    if list(checkpoint.get("modalities") or modalities) != list(modalities):
        found.append(f"modalities: {'+'.join(checkpoint['modalities'])} -> {'+'.join(modalities)}")
    found += differences(flat(dict(checkpoint["classes"]), "classes"), flat(prepared.classes.to_dict(), "classes"))
    found += differences(flat(checkpoint["preprocess"], "data"), flat(prepared.preprocess, "data"))
    if found:
        shown = "; ".join(found[:SHOWN_DIFFERENCES]) + (f"; and {len(found) - SHOWN_DIFFERENCES} more"
                                                        if len(found) > SHOWN_DIFFERENCES else "")
        raise ConfigError(f"resume={resume}: this config cannot continue that run ({shown}). Resume with the "
                          "original run's overrides, or start a new run without resume=.")
    changed = differences(flat(OmegaConf.to_container(stored.get("training", {}), resolve=True), "training"),
                          flat(record.section("training"), "training"))
    changed = [c for c in changed if not c.startswith(("training.stop_after_epoch", "training.num_epochs"))]
    if changed:
        log.warning("resume=%s: training settings differ from the original run (%s); the resumed run will not "
                    "match one that never stopped.", resume, "; ".join(changed[:SHOWN_DIFFERENCES]))


def logged_epochs(tracking_uri: str, run_id: str, metric: str) -> list[int]:
    """The steps (epochs) at which the MLflow run has ``metric``; [] if the run is not in this store."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, metric))
    except MlflowException:
        return []


def check_not_behind_mlflow(resume: Path, checkpoint: dict, tracking_uri: str) -> None:
    """Resuming from a checkpoint older than what MLflow already shows (say best.pth) would log those epochs
    twice: refuse, and point at latest.pth."""
    check_server_answers(tracking_uri)
    epochs = logged_epochs(tracking_uri, checkpoint["mlflow_run_id"], "train/loss")
    if epochs and epochs[-1] > checkpoint["epoch"]:
        raise ConfigError(f"resume={resume} ends at epoch {checkpoint['epoch'] + 1}, but its MLflow run "
                          f"{checkpoint['mlflow_run_id']} already has epochs up to {epochs[-1] + 1}; resume from the "
                          "run's checkpoints/latest.pth.")


def backfill_history(tracker: TrackedRun, checkpoint: dict) -> int:
    """Log the checkpoint's epochs that MLflow lacks (the run was killed between a save and its logging)."""
    logged = set(logged_epochs(tracker.tracking_uri, tracker.run_id, "train/loss"))
    missing = [row for row in checkpoint["history"] if row["epoch"] not in logged]
    for row in missing:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    if missing:
        log.info("Logged %d epoch(s) MLflow had missed: %s", len(missing), [row["epoch"] + 1 for row in missing])
    return len(missing)
