"""The Optuna side of a sweep: where the study lives, which trials a sweep asked, and trials left behind.

A study is a name in a storage URL. The presets default the storage to ``sqlite:///<project root>/optuna.db``
(``$MMBEHAVE_OPTUNA_STORAGE`` overrides it, e.g. a PostgreSQL URL that several machines share) and the name
to the preset's. Every trial a sweep asks carries user attributes naming its sweep, its MLflow parent run
and the host and process that asked it, so a trial orphaned by a killed sweep can be told apart from one
still running on another machine.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # optuna loads only when a sweep uses it: single runs import this module too
    import optuna

log = logging.getLogger(__name__)

# User attributes set on every trial a sweep asks (see mmbehave.sweeps.callback.record_trial).
SWEEP_ID_ATTR = "sweep_id"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
HOST_ATTR = "sweep_host"
PID_ATTR = "sweep_pid"


def is_optuna_sweeper(sweeper_cfg: Any) -> bool:
    return "optuna" in str(sweeper_cfg.get("_target_", "")).lower()


def is_mmbehave_sweeper(sweeper_cfg: Any) -> bool:
    """mmbehave's Optuna sweeper (mmbehave/sweeps/sweeper.py): its jobs may finish their own trials."""
    return str(sweeper_cfg.get("_target_", "")) == "mmbehave.sweeps.sweeper.MMBehaveOptunaSweeper"


def load_study(storage: str, name: str) -> optuna.Study | None:
    """The study, or None if the storage has none of that name yet."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # someone else's process, or no pid recorded: assume it is running
    return True


def close_orphaned_trials(study: optuna.Study, finished_values: dict[int, list[float]] | None = None
                          ) -> tuple[list[int], list[int]]:
    """Trials left RUNNING by a sweep on this host whose process is gone (killed, out of memory): those whose
    training finished (``finished_values``: trial number -> the values its run returned) become COMPLETE with
    their values, the others FAIL. Returns (completed, failed) trial numbers.

    A sweep tells Optuna its trials' values only when a whole batch is done, so a sweep killed mid-batch leaves
    finished trials RUNNING. Trials asked on other hosts are left alone; they may well be running there."""
    from optuna.trial import TrialState

    finished_values = finished_values or {}
    completed, failed = [], []
    host = this_host()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(HOST_ATTR) != host or process_alive(trial.user_attrs.get(PID_ATTR)):
            continue
        values = finished_values.get(trial.number)
        if values is not None and len(values) == len(study.directions):
            study.tell(trial.number, values=values, skip_if_finished=True)
            completed.append(trial.number)
        else:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    if completed:
        log.warning("Study '%s': trial(s) %s had finished training when their sweep was killed; kept as COMPLETE "
                    "with the values their runs returned.", study.study_name, completed)
    if failed:
        log.warning("Study '%s': trial(s) %s were left RUNNING by a sweep process that no longer exists; "
                    "marked FAIL.", study.study_name, failed)
    return completed, failed


def fail_running_trials(study: optuna.Study, numbers: list[int]) -> list[int]:
    """This sweep's trials still RUNNING when it stopped early: FAIL, so a resumed study does not wait on them."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in numbers:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as plain data for the results file."""
    record: dict[str, Any] = {"trial": trial.number, "state": trial.state.name, "params": dict(trial.params)}
    if trial.values is not None:
        record["values" if len(trial.values) > 1 else "value"] = (
            list(trial.values) if len(trial.values) > 1 else trial.values[0])
    return record
