"""Credentials never reach logs, params, tags or artifacts: a training run against a real MLflow server on
127.0.0.1, reached through a URI with a password, leaves that password nowhere (``mmbehave/core/redact.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import TINY_SPLITS, free_port, run_module
from mlflow.tracking import MlflowClient

from mmbehave.core.redact import redact

SECRET = "S3cret-Passw0rd"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on loopback (takes ~15 s to start), with its own SQLite store and artifact folder."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                               "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError("mlflow server did not start") from None
            time.sleep(0.5)
    yield url, root
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def files_holding(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["environment", "command_line"])
def test_a_password_in_the_tracking_uri_is_never_written(mlflow_server, synthetic_root, tmp_path, where):
    url, server_root = mlflow_server
    secret_uri = url.replace("http://", f"http://alice:{SECRET}@")
    overrides = ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), f"hydra.run.dir={tmp_path / 'run'}",
                 f"mlflow.experiment_name=credentials_{where}"]
    env = {"MLFLOW_TRACKING_URI": secret_uri}
    if where == "command_line":
        overrides.append(f"mlflow.tracking_uri={secret_uri}")
        env = {"MLFLOW_TRACKING_URI": ""}
    result = run_module("mmbehave.train", *overrides, tmp_path=tmp_path, env=env)

    assert SECRET not in result.stdout and SECRET not in result.stderr
    assert "alice:***@127.0.0.1" in result.stdout + result.stderr  # the address is still shown, without the password
    if where == "command_line":
        assert "mlflow.tracking_uri on the command line carries a password" in result.stderr
    assert files_holding(tmp_path / "run", SECRET) == []  # logs, .hydra/, checkpoints

    client = MlflowClient(url)
    run = client.search_runs([client.get_experiment_by_name(f"credentials_{where}").experiment_id])[0]
    assert run.info.status == "FINISHED"
    for key, value in {**run.data.params, **run.data.tags}.items():
        assert SECRET not in value, key
    if where == "command_line":
        assert run.data.params["mlflow.tracking_uri"] == redact(secret_uri)
    assert files_holding(server_root / "artifacts", SECRET) == []  # config.yaml, the training log


def test_redact_hides_the_password_of_every_uri_and_nothing_else():
    text = ("tracking http://alice:pw1@host:5000/x storage postgresql+psycopg2://mmb:p%40ss@db.lab:5432/optuna "
            "token https://:tok@h sqlite:////tmp/mlflow.db s3://bucket/key")
    assert redact(text) == ("tracking http://alice:***@host:5000/x storage postgresql+psycopg2://mmb:***@db.lab:5432/optuna "
                            "token https://:***@h sqlite:////tmp/mlflow.db s3://bucket/key")
    assert redact(redact(text)) == redact(text)
