"""What people look at: the MLflow UI, rendered by a real headless Chromium against a real ``mlflow server`` on
127.0.0.1, and optuna-dashboard's API, over a store holding a finished 2-trial sweep.

Needs Debian's ``chromium`` (``.ci/run`` installs it when missing; locally: ``apt-get install chromium``) and
the ``dashboard`` extra (``pip install -e ".[test,dashboard]"``, which the test extra includes). The browser test
is marked ``infra``. The sweep is a real multirun, run once for all xdist workers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import TINY_SPLITS, built_once, free_port, run_module
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What a closed network needs: no background connections, no GPU, a fresh profile (see the machine notes).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def serve(command: list[str], url: str, cwd: Path) -> subprocess.Popen:
    """Start a server on loopback and wait until ``url`` answers."""
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return server
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(f"{command[:3]} did not start") from None
            time.sleep(0.5)


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory, synthetic_root):
    """A finished 2-trial Optuna sweep: one MLflow parent run with two children, and its study (run once for all
    workers: the two tests here may land on different ones)."""
    def sweep(work: Path) -> None:
        run_module("mmbehave.train", "hparams_search=mbt", "debug=fast", "mlflow.experiment_name=ui_sweep",
                   f"data.root={synthetic_root}", *TINY_SPLITS.split(), "training.limit_train_batches=1",
                   "training.limit_val_batches=1", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                   f"hydra.sweeper.storage=sqlite:///{work / 'optuna.db'}", f"hydra.sweep.dir={work / 'sweep'}",
                   tmp_path=work)

    work = built_once(tmp_path_factory, "ui_sweep", sweep)
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ui_sweep")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    return work, experiment.experiment_id, parent, children


def render(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM Chromium renders for ``url`` (scripts run, data fetched), and optionally a screenshot of the same
    page: one browser start for both (headless Chromium takes --dump-dom and --screenshot together)."""
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
               "--window-size=1400,900", "--dump-dom", *([f"--screenshot={screenshot}"] if screenshot else []), url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.infra
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (.ci/run does)")
def test_the_mlflow_ui_shows_the_sweep_its_trials_and_their_values(finished_sweep, tmp_path):
    work, experiment_id, parent, children = finished_sweep
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                    "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}", "--workers", "1"], f"{url}/health", work)
    try:
        experiment_page = render(f"{url}/#/experiments/{experiment_id}/runs", tmp_path / "profile1",
                                 screenshot=tmp_path / "mlflow_ui_sweep.png")
        assert parent.info.run_name in experiment_page  # the sweep's parent run, by its name
        child = children[0]
        run_page = render(f"{url}/#/experiments/{experiment_id}/runs/{child.info.run_id}", tmp_path / "profile2",
                          screenshot=tmp_path / "mlflow_ui_trial.png")
        assert child.info.run_name in run_page and "val/macro_f1" in run_page and "fusion.num_layers" in run_page
        assert parent.info.run_name in run_page  # the trial page names its parent run
        # The experiment page nests trials under their (collapsed) parent; the compare page lists them side by side.
        ids = ",".join(f"%22{c.info.run_id}%22" for c in children)
        compare_page = render(f"{url}/#/compare-runs?runs=%5B{ids}%5D&experiments=%5B%22{experiment_id}%22%5D",
                              tmp_path / "profile3", screenshot=tmp_path / "mlflow_ui_compare.png")
        assert all(c.info.run_name in compare_page for c in children)
        assert "fusion.num_layers" in compare_page and "val/macro_f1" in compare_page
    finally:
        stop(server)
    assert (tmp_path / "mlflow_ui_sweep.png").stat().st_size > 10_000  # kept with the test's files


def test_optuna_dashboard_lists_the_study_and_its_trials(finished_sweep):
    pytest.importorskip("optuna_dashboard", reason="the dashboard extra: pip install -e '.[dashboard]'")
    work = finished_sweep[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dashboard = str(Path(sys.executable).with_name("optuna-dashboard"))
    server = serve([dashboard, f"sqlite:///{work / 'optuna.db'}", "--host", "127.0.0.1", "--port", str(port)],
                   f"{url}/api/studies", work)
    try:
        studies = json.loads(urllib.request.urlopen(f"{url}/api/studies", timeout=10).read())["study_summaries"]
        study = next(s for s in studies if s["study_name"] == "mbt")
        detail = json.loads(urllib.request.urlopen(f"{url}/api/studies/{study['study_id']}", timeout=10).read())
        assert len(detail["trials"]) == 2 and {t["state"] for t in detail["trials"]} == {"Complete"}
    finally:
        stop(server)
