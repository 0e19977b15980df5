"""A multirun's options, read once from the config Hydra hands its callbacks, as a training run reads its own
(training/settings.py): the callback decides by these. The raw config is kept only where Hydra's own config must
be written (a resumed study's sampler seed, ``callback._prepare_study``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.redact import redact
from mmbehave.core.settings import objectives_of, typed_view
from mmbehave.sweeps.study import is_mmbehave_sweeper, is_optuna_sweeper
from mmbehave.sweeps.trial_link import PruningSettings


@dataclass(frozen=True)
class SweepSettings:
    tracking_uri: str
    experiment_name: str
    optuna: bool                       # the sweeper is an Optuna one (a study), not the basic grid
    jobs_finish_trials: bool           # mmbehave's sweeper: each job tells Optuna its own result
    study_name: str | None             # a study kept in storage (resumable), else None
    storage: str | None
    sampler_seed: int | None
    launcher: str                      # the launcher's class name
    task_overrides: tuple[str, ...]    # the command line's overrides
    sweep_dir: Path
    search_space: dict[str, str]       # the swept axes: {key: "choice(1,2)"}
    cv_resume: bool                    # experiment=site_cv's cv.resume
    pruning: PruningSettings | None    # pruning.*, when the config has it
    objectives: tuple[str, ...]
    log_model: str
    registered_model_name: str | None

    @property
    def shown_overrides(self) -> str:
        return redact(" ".join(self.task_overrides))


def read_sweep_settings(config: DictConfig) -> SweepSettings:
    from mmbehave.tracking.store import resolve_tracking_uri

    sweeper = config.hydra.sweeper
    optuna = is_optuna_sweeper(sweeper)
    stored = optuna and bool(sweeper.get("study_name")) and bool(sweeper.get("storage"))
    seed = sweeper.sampler.get("seed") if "sampler" in sweeper else None
    return SweepSettings(
        tracking_uri=resolve_tracking_uri(config.mlflow.tracking_uri),
        experiment_name=str(config.mlflow.experiment_name), optuna=optuna,
        jobs_finish_trials=is_mmbehave_sweeper(sweeper),
        study_name=str(sweeper.study_name) if stored else None, storage=str(sweeper.storage) if stored else None,
        sampler_seed=None if seed is None else int(seed),
        launcher=str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
        task_overrides=tuple(config.hydra.overrides.task), sweep_dir=Path(str(config.hydra.sweep.dir)),
        search_space=search_space(config), cv_resume=bool(config.get("cv", {}).get("resume", False)),
        pruning=typed_view(PruningSettings, config.pruning, "pruning", defaults=True) if "pruning" in config else None,
        objectives=objectives_of(config.optimized_metric), log_model=str(config.mlflow.get("log_model", "auto")),
        registered_model_name=config.mlflow.get("registered_model_name"))


@dataclass(frozen=True)
class JobSettings:
    """What a job's process needs of its config to join the sweep."""

    num: int                           # hydra.job.num
    torch_threads: int | None          # the cores shared out under the joblib launcher
    num_epochs: int
    objectives: tuple[str, ...]
    labels_dir: str                    # a cross-validation fold's folder ("None" for other jobs)


def read_job_settings(config: DictConfig) -> JobSettings:
    return JobSettings(num=int(config.hydra.job.num), torch_threads=parallel_torch_threads(config),
                       num_epochs=int(config.training.num_epochs), objectives=objectives_of(config.optimized_metric),
                       labels_dir=str(config.data.get("labels_dir")))


def parallel_torch_threads(config: DictConfig) -> int | None:
    """Under the joblib launcher: the cores shared out between the jobs that run at once. None otherwise."""
    launcher = config.hydra.launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_jobs = int(launcher.get("n_jobs") or -1)
    at_once = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 all cores, -2 all but one
    return max(1, cores // at_once)


def search_space(config: DictConfig) -> dict[str, str]:
    """The swept axes of this multirun, from the sweeper's params and the command line: {key: "choice(1,2)"}."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(lines)
    return {o.get_key_element().lstrip("+~"): o.input_line.split("=", 1)[1] for o in parsed if o.is_sweep_override()}
