"""A killed cross-validation continues: the same command again trains only the folds that did not finish.

    on_multirun_start  ─► the latest earlier parent run of the same command (same overrides) in the experiment;
                          if it ended unfinished (KILLED, FAILED; a killed process's run is closed as KILLED
                          first), its FINISHED fold runs by fold folder
    each job           ─► its fold finished there: that run moves under the new parent (re-tagged, marked
                          ``adopted_from``) and its value is the job's; otherwise the fold trains as usual
    the parent         ─► mean, spread and per-fold values over all folds, adopted and new (``sweeps.over_runs``)

Moved, not copied, so every fold has exactly one run and the killed parent keeps only what did not finish.
A finished cross-validation is never continued: the same command again is a new one (another repeat).
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

ADOPTED_TAG = "adopted_from"   # on a fold run a later sweep took over: the sweep id it ran in
LABELS_PARAM = "data.labels_dir"


def finished_folds(client: Any, experiment_id: str, overrides: str) -> tuple[str | None, dict[str, str]]:
    """(the unfinished earlier sweep's id, {fold folder: its FINISHED run id}) for a sweep of these overrides;
    (None, {}) when the latest such sweep finished, is still running, or there is none."""
    parents = client.search_runs([experiment_id], "tags.sweeper != ''", order_by=["attributes.start_time DESC"],
                                 max_results=1000)  # only a sweep's parent run has the sweeper tag
    same = [run for run in parents if run.data.tags.get("hydra_overrides") == overrides]
    # Only a sweep that ended unfinished: a RUNNING one may be alive (here, or on another machine) and keeps its folds.
    if not same or same[0].info.status not in ("KILLED", "FAILED"):
        return None, {}
    earlier = same[0]
    children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{earlier.info.run_id}' and "
                                  "attributes.status = 'FINISHED'", max_results=50000)
    folds = {run.data.params[LABELS_PARAM]: run.info.run_id for run in children
             if run.data.tags.get("fold") and LABELS_PARAM in run.data.params}
    return earlier.data.tags.get("sweep_id"), folds


def adopt(tracking_uri: str, run_id: str, job: Any) -> float | list[float]:
    """Move finished run ``run_id`` under ``job``'s parent as that job; its value, as the run returned it."""
    from mlflow.tracking import MlflowClient

    from mmbehave.sweeps.hooks import OBJECTIVE_TAG

    client = MlflowClient(tracking_uri)
    tags = client.get_run(run_id).data.tags
    if OBJECTIVE_TAG not in tags:
        raise RuntimeError(f"fold run {run_id} has no {OBJECTIVE_TAG} tag; run the cross-validation with cv.resume=false")
    earlier_sweep = tags.get("sweep_id", "")
    for key, value in {**job.tags(), ADOPTED_TAG: earlier_sweep}.items():
        client.set_tag(run_id, key, value)
    log.info("%s finished in sweep %s (run %s): taken over, not trained again", tags.get("fold"), earlier_sweep, run_id)
    return json.loads(tags[OBJECTIVE_TAG])


def adopted_value(tracking_uri: str | None) -> float | list[float] | None:
    """In a job whose fold finished in the killed cross-validation this one continues: that run taken over and
    its value; None for every other job (which then trains). ``tracking_uri``: mlflow.tracking_uri as given."""
    from mmbehave.sweeps.job import current_sweep_job
    from mmbehave.tracking.store import resolve_tracking_uri

    job = current_sweep_job()
    if job is None or job.adopt_run_id is None:
        return None
    return adopt(resolve_tracking_uri(tracking_uri), job.adopt_run_id, job)
