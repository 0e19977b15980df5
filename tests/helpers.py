"""Helpers shared by the tests: composing the real config, running a command's function in this process on it
(``run_here``, ``train_here``), and running the real CLIs in a subprocess (``run_module``).

Tests that check what a command computes or writes call its function in-process; a subprocess is for what only the
process shows: exit codes and one-line errors, signals, console scripts, Hydra multiruns, one smoke run per command.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mmbehave.core.paths import config_dir

# Small enough to generate in a few seconds; every (species, behaviour) pair appears in every split.
TINY_SPLITS = "data.clips_per_split.train=40 data.clips_per_split.val=20 data.clips_per_split.test=20"


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """The real Hydra composition, as the CLI does it (no hydra runtime keys resolved)."""
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_with_hydra(*overrides: str) -> DictConfig:
    """The composed config with its `hydra` node (sweeper, launcher, overrides), as the callback sees it."""
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``<shared>/<name>``, an empty folder filled by ``build(folder)`` once per test run, by whichever xdist worker
    asks first while the others wait on a file lock, then reuse it (the pattern pytest-xdist recommends). Shared:
    the run's base temp folder, whose ``popen-gw<n>`` folders are the workers' own; without xdist, this process's
    base temp folder. A build that failed is started again by the next worker that asks."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


# Set by conftest.py for the session; None outside pytest (then every store is made from nothing).
TMP_PATH_FACTORY = None
_store_template: list[Path] = []


def fresh_store(db: Path, cwd: Path) -> None:
    """Give a test's new SQLite MLflow store ``db`` its tables by copying an empty store that MLflow migrated once
    per test run (``built_once``), instead of MLflow's ~3 s of Alembic migrations in every test. The copy is what
    MLflow makes for a command started in ``cwd``: the same schema, and its Default experiment pointing at
    ``<cwd>/mlruns/0``. Making a store from nothing stays tested where a test opens its own store
    (test_tracking.py, test_user_data_safety.py, the template itself through ``prepare_store``). Nothing is done
    when ``db`` exists or its folder does not."""
    if TMP_PATH_FACTORY is None or db.exists() or not db.parent.is_dir():
        return
    if not _store_template:
        def migrate(folder: Path) -> None:
            from mmbehave.tracking.store import prepare_store

            with kept_process_state():
                os.chdir(folder)  # MLflow's Default experiment points at ./mlruns of where the store is made
                prepare_store(f"sqlite:///{folder / 'mlflow.db'}")

        _store_template.append(built_once(TMP_PATH_FACTORY, "empty_mlflow_store", migrate) / "mlflow.db")
    template = _store_template[0]
    shutil.copyfile(template, db)
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?) "
                           "WHERE experiment_id = 0", (str(template.parent), str(cwd.resolve())))


def fresh_store_for(overrides, env: dict | None, default: Path, cwd: Path) -> None:
    """``fresh_store`` for the SQLite store a command started in ``cwd`` will use: ``mlflow.tracking_uri=`` among
    its overrides, else ``$MLFLOW_TRACKING_URI`` in ``env``, else ``default``."""
    from mmbehave.tracking.store import sqlite_path

    uri = next((o.split("=", 1)[1] for o in overrides if o.startswith("mlflow.tracking_uri=")), None)
    if uri is None:
        uri = (env or {}).get("MLFLOW_TRACKING_URI", f"sqlite:///{default}")
    if sqlite_path(uri) is not None:
        fresh_store(sqlite_path(uri), cwd)


def free_port() -> int:
    """A port nothing listens on, on loopback (test servers never bind elsewhere)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_module(module: str, *overrides: str, tmp_path: Path, env: dict | None = None,
               timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides>`` as a user runs it, from a cwd outside the repo, with a temp MLflow store."""
    fresh_store_for(overrides, env, tmp_path / "mlflow.db", cwd=tmp_path)
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **(env or {})}
    full_env.pop("MMBEHAVE_ROOT", None)
    result = subprocess.run([sys.executable, "-m", module, *overrides], cwd=tmp_path, env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"python -m {module} {' '.join(overrides)} exited {result.returncode}\n"
                             f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}")
    return result


@dataclass
class Ran:
    """What a command's function returned, and what it printed and logged (INFO and up) while it ran."""

    value: Any
    output: str


@contextlib.contextmanager
def kept_process_state(env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a command in this process and leave the process as it was: the environment (``env`` added for the
    block, $MMBEHAVE_ROOT removed as run_module does), the working directory, torch's thread count, MLflow's
    tracking URI, active run and experiment, and the root logger's level and handlers."""
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent
    import torch

    saved_env, cwd, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    tracking_uri, experiment_id = tracking_utils._tracking_uri, fluent._active_experiment_id
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    os.environ.pop("MMBEHAVE_ROOT", None)
    os.environ.update(env or {})
    try:
        yield
    finally:
        while mlflow.active_run() is not None:  # a run is always ended by the command; never leak one to the next test
            mlflow.end_run()
        tracking_utils._tracking_uri, fluent._active_experiment_id = tracking_uri, experiment_id
        os.environ.clear()
        os.environ.update(saved_env)  # also MLFLOW_TRACKING_URI, which mlflow.set_tracking_uri sets
        os.chdir(cwd)
        torch.set_num_threads(threads)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


def in_process(call: Callable[[], Any], env: dict[str, str] | None = None) -> Ran:
    """``call()`` in this process, as a command's ``main`` would call it, with its output captured (stdout, stderr
    and log records at INFO and up, as Hydra's logging shows them) and the process state kept
    (``kept_process_state``). An exception propagates with the captured output attached as a note."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))
    with kept_process_state(env):
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                value = call()
        except BaseException as error:
            error.add_note(f"--- output ---\n{out.getvalue()[-6000:]}")
            raise
    return Ran(value, out.getvalue())


def _evaluate(cfg):
    from mmbehave.analysis.evaluation import run_evaluation

    return run_evaluation(cfg)


def _export(cfg):
    from mmbehave.analysis.export_comparison import run_export

    return run_export(cfg)


def _predict(cfg):
    from mmbehave.predicting.run import run_prediction

    return run_prediction(cfg)


def _preprocess(cfg):
    from mmbehave.data.preprocessing import preprocess_from_config

    return preprocess_from_config(cfg.data, num_workers=cfg.preprocess.num_workers, progress=cfg.preprocess.progress)


def _distill(cfg):
    from mmbehave.distilling.run import run_distillation

    return run_distillation(cfg)


def _pretrain(cfg):
    from mmbehave.pretraining.run import run_pretraining

    return run_pretraining(cfg)


def _import_camtrap_dp(cfg):
    from mmbehave.data.camtrap_dp.importer import import_package

    return import_package(cfg)


def _train(cfg):
    from mmbehave.training.run import run_training

    return run_training(cfg)


# The function each command's `main` calls on its composed config (mmbehave/<command>.py).
COMMANDS: dict[str, Callable[[DictConfig], Any]] = {
    "train": _train, "evaluate": _evaluate, "export": _export, "predict": _predict, "preprocess": _preprocess,
    "import_camtrap_dp": _import_camtrap_dp, "distill": _distill, "pretrain": _pretrain,
}


def run_here(command: str, *overrides: str, tmp_path: Path, run: str = "run", env: dict | None = None) -> Ran:
    """``python -m mmbehave.<command> <overrides>`` as run_module runs it, but in this process: the real Hydra
    composition of conf/<command>.yaml, the command's function on it, a temp MLflow store
    (``$MLFLOW_TRACKING_URI=sqlite:///<tmp_path>/mlflow.db``, which ``env`` may replace) and, for the run folder
    Hydra would make, ``paths.output_dir=<tmp_path>/<run>``. Errors are raised (a ``UserError`` is what the CLI
    prints as one ``error:`` line, exit 2), not exit codes."""
    cfg = compose_config([*overrides, f"paths.output_dir={tmp_path / run}"], config_name=command)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **(env or {})}
    fresh_store_for(overrides, env, tmp_path / "mlflow.db", cwd=Path.cwd())
    return in_process(lambda: COMMANDS[command](cfg), env=env)


def train_here(tmp_path: Path, *overrides: str, run: str = "run", env: dict | None = None) -> Ran:
    """``python -m mmbehave.train <overrides>`` in this process (``run_here``): ``run_training`` on the composed
    config, its run folder ``<tmp_path>/<run>``, its MLflow store ``sqlite:///<tmp_path>/mlflow.db``."""
    return run_here("train", *overrides, tmp_path=tmp_path, run=run, env=env)


def user_error(call: Callable[[], Any]) -> str:
    """The message of the ``UserError`` that ``call()`` raises: what the CLI prints as its one ``error:`` line
    (exit 2, no traceback; the CLI tests check that plumbing), checked to be one line."""
    from mmbehave.core.errors import UserError

    try:
        call()
    except UserError as error:
        message = str(error)
        assert "\n" not in message, message
        return message
    raise AssertionError(f"{call} raised no UserError")


def hydra_dir_override(tmp_path: Path) -> list[str]:
    """Keep the test's Hydra run folders in its temp dir, not the repo's outputs/."""
    return [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]


def default_heads():
    """The heads of the default config (model/heads=guide: species and behavior), as the run reads them."""
    from mmbehave.domain.heads import heads_from_config

    return heads_from_config(compose_config())


def frozen_pretrained_encoders(folder: Path) -> list[str]:
    """Stand-ins for pretrained weights, saved in ``folder`` as a lab keeps its own (a VideoMAE folder and a
    ResNet18 file), and the overrides that load and freeze them without augmentation (so they can be cached)."""
    import torch
    from torchvision.models import resnet18
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    VideoMAEModel(VideoMAEConfig(num_frames=8, image_size=32, patch_size=8, hidden_size=96, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=192)).save_pretrained(folder / "videomae")
    torch.save(resnet18(weights=None).state_dict(), folder / "resnet18.pth")
    return [f"video_encoder.model_name={folder / 'videomae'}", "video_encoder.pretrained=true",
            "video_encoder.freeze_backbone=true", "video_encoder.on_load_failure=raise",
            "audio_encoder.pretrained=true", f"audio_encoder.weights_path={folder / 'resnet18.pth'}",
            "audio_encoder.freeze_backbone=true", "audio_encoder.on_load_failure=raise",
            "data.augment.time_masks=0", "data.augment.freq_masks=0"]
