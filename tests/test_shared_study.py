"""One Optuna study, several sweep processes started at once on the same storage: together they finish their
trials with no trial number used twice and no result lost, and every trial is one MLflow child run.

Run on SQLite (one host) and on a real PostgreSQL server started for the test on 127.0.0.1, holding both the
study and the MLflow store, as a lab sharing one database between machines would. PostgreSQL needs Debian's
``postgresql`` package (``.ci/run`` installs it when missing; locally: ``sudo apt-get install postgresql``) and
``psycopg`` (the postgres extra, part of the test extra); without them that case is skipped with the reason. That
case is marked ``infra`` (``-m "not infra"`` leaves it out); the workers are real processes started together, as on
several machines.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from helpers import TINY_SPLITS, free_port
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
WORKERS = 2
TRIALS_EACH = 2


def postgres_bin() -> Path | None:
    """Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None)
    return Path(found).parent if found else None


def as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` account the Debian package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth, loopback only) with databases optuna and mlflow."""
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("needs PostgreSQL's server binaries: sudo apt-get install postgresql (.ci/run does)")
    pytest.importorskip("psycopg", reason="needs psycopg: pip install -e '.[postgres]'")
    # Not under pytest's tmp folder: it is private to root, and the server runs as `postgres`.
    home = Path(tempfile.mkdtemp(prefix="mmbehave-pg-"))
    data = home / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "mmbehave", "--auth=trust",
                                   "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(as_server_user([str(binaries / "postgres"), "-D", str(data), "-p", str(port),
                                              "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}",
                                              "-c", "max_connections=60"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import psycopg

    deadline = time.time() + 60
    while True:
        try:
            connection = psycopg.connect(host="127.0.0.1", port=port, user="mmbehave", dbname="postgres", autocommit=True)
            break
        except psycopg.OperationalError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError("the PostgreSQL server did not start") from None
            time.sleep(0.3)
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE optuna")
        cursor.execute("CREATE DATABASE mlflow")
    connection.close()
    yield f"postgresql://mmbehave@127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=60)
    shutil.rmtree(home, ignore_errors=True)


def start_worker(index: int, storage: str, tracking_uri: str, root: Path, synthetic_root: Path) -> subprocess.Popen:
    """One sweep process, as a user would start it on each machine: the same command, the same storage."""
    command = [sys.executable, "-m", "mmbehave.train", "hparams_search=mbt", "debug=fast", f"data.root={synthetic_root}",
               *TINY_SPLITS.split(), "training.limit_train_batches=1", "training.limit_val_batches=1",
               "hydra.sweeper.n_jobs=1", f"hydra.sweeper.n_trials={TRIALS_EACH}", f"hydra.sweeper.storage={storage}",
               f"mlflow.tracking_uri={tracking_uri}", f"hydra.sweep.dir={root / f'worker{index}'}", "print_config=false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": tracking_uri}
    log = open(root / f"worker{index}.log", "w")
    return subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_workers_together(storage: str, tracking_uri: str, root: Path, synthetic_root: Path) -> None:
    workers = [start_worker(i, storage, tracking_uri, root, synthetic_root) for i in range(WORKERS)]
    codes = [w.wait(timeout=600) for w in workers]
    logs = "\n".join((root / f"worker{i}.log").read_text()[-3000:] for i in range(WORKERS))
    assert codes == [0] * WORKERS, logs


def check_one_study_many_workers(storage: str, tracking_uri: str) -> None:
    trials = optuna.load_study(study_name="mbt", storage=storage).trials
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(WORKERS * TRIALS_EACH)), "a trial number used twice, or a trial lost"
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.value is not None for t in trials)

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == WORKERS and all(p.info.status == "FINISHED" for p in parents), \
        [(r.info.run_name, r.info.status, r.data.tags.get("optuna_trial")) for r in runs]
    by_trial = {int(r.data.tags["optuna_trial"]): r for r in children}
    assert sorted(by_trial) == numbers and len(children) == len(numbers)
    for trial in trials:  # each result reached both stores, under the trial the worker was given
        assert by_trial[trial.number].data.metrics["val/macro_f1"] == pytest.approx(trial.value)
    for parent in parents:  # each worker's parent holds exactly its own trials
        mine = [r for r in children if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == TRIALS_EACH


def test_workers_share_one_study_on_sqlite(tmp_path, synthetic_root):
    storage, tracking_uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_workers_together(storage, tracking_uri, tmp_path, synthetic_root)
    check_one_study_many_workers(storage, tracking_uri)


@pytest.mark.infra
def test_workers_share_one_study_and_mlflow_store_on_postgresql(postgres, tmp_path, synthetic_root):
    storage, tracking_uri = f"{postgres}/optuna", f"{postgres}/mlflow"
    run_workers_together(storage, tracking_uri, tmp_path, synthetic_root)
    check_one_study_many_workers(storage, tracking_uri)
