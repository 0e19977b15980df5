"""The MLflow store: where it is, whether it answers, and its tables and experiments made safely.

The store defaults to a SQLite file at the project root given as an absolute URI: Hydra may change the
working directory, and MLflow 3 refuses the old ./mlruns file store. A server that does not answer is one
line within seconds (``check_server_answers``, bounded retries), never minutes of MLflow's own retrying.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import mlflow

from mmbehave.core.errors import TrackingError
from mmbehave.core.paths import project_root
from mmbehave.core.redact import redact


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None) -> str:
    """config ``mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's SQLite file."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a SQLite store URI; None for a server or database URL."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite store (``<store dir>/mlartifacts``). MLflow's own default is ``./mlruns``
    of whatever directory the experiment happened to be created from; servers choose their own."""
    path = sqlite_path(tracking_uri)
    return None if path is None else (path.parent / "mlartifacts").as_uri()


# URI -> the SQLite file's (device, inode) when this process made it ready; None for a server or database URL.
_ready_stores: dict[str, tuple[int, int] | None] = {}
HTTP_SCHEMES = ("http", "https")
# MLflow retries an unreachable server 7 times with a growing backoff (minutes of apparent hang); a run that
# cannot log should say so within about half a minute. MLflow's own variables, set by the user, win.
HTTP_RETRIES, HTTP_TIMEOUT_S = 2, 10


def bound_http_requests(retries: int | None = None, timeout_s: float | None = None) -> None:
    """Bound MLflow's HTTP retries and timeout for this process: ``mlflow.http_retries`` /
    ``mlflow.http_timeout_s`` where the config sets them, else $MLFLOW_HTTP_REQUEST_MAX_RETRIES /
    $MLFLOW_HTTP_REQUEST_TIMEOUT where set, else mmbehave's defaults."""
    for name, value, default in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", retries, HTTP_RETRIES),
                                 ("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout_s, HTTP_TIMEOUT_S),
                                 ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", None, 1)):
        if value is not None:
            os.environ[name] = str(int(value))
        else:
            os.environ.setdefault(name, str(default))


def check_server_answers(tracking_uri: str) -> None:
    """TrackingError (one line, no password) unless an MLflow server at an http(s) URI answers; other stores
    (SQLite, a database URL) are opened directly."""
    if tracking_uri.split("://", 1)[0].lower() not in HTTP_SCHEMES:
        return
    import requests

    bound_http_requests()
    attempts, timeout = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1, float(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    started, reason = time.monotonic(), ""
    for attempt in range(attempts):
        try:
            requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
            return  # any HTTP answer (even 401 / 404) means a server is there; MLflow reports the rest
        except requests.RequestException as error:
            reason = _connection_reason(error)
        if attempt + 1 < attempts:
            time.sleep(1 + attempt)
    raise TrackingError(f"mlflow.tracking_uri={redact(tracking_uri)}: no MLflow server answers ({reason}; {attempts} "
                        f"tries in {time.monotonic() - started:.0f} s). Start it, correct the address "
                        "(mlflow.tracking_uri or $MLFLOW_TRACKING_URI), or unset both for the local SQLite store.")


@contextlib.contextmanager
def store_errors_in_one_line(tracking_uri: str, doing: str) -> Iterator[None]:
    """An MLflow store that answers but fails (a server going down, a proxy in the way, an auth wall) becomes
    one TrackingError line with the password hidden, before any work has started."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        raise TrackingError(f"mlflow.tracking_uri={redact(tracking_uri)}: could not {doing} "
                            f"({_connection_reason(error)}). Check that the address is an MLflow server (or unset "
                            "mlflow.tracking_uri and $MLFLOW_TRACKING_URI for the local SQLite store).") from error


def _connection_reason(error: Exception) -> str:
    """The innermost cause of a failed request, in a few words (requests nests the socket error deep)."""
    text = str(error)
    for known in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                  "Temporary failure in name resolution", "Network is unreachable", "Connection reset",
                  "Remote end closed connection without response", "certificate verify failed"):
        if known.lower() in text.lower():
            return known.lower()
    status = re.search(r"error code (\d{3})", text)
    if status:
        return f"the server answered HTTP {status.group(1)}"
    return redact(" ".join(text.split()))[:160]


DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def prepare_store(tracking_uri: str, attempts: int = 6) -> None:
    """Create a new database store's tables before anything else opens it: MLflow migrates a fresh database on
    first use, and two processes doing it at once (parallel trials, sweeps started together) collide on the
    same ALTER TABLE. SQLite: one at a time under a file lock. A database server (workers on several machines
    share no file system): whoever loses the race retries once the winner's migration is done."""
    if tracking_uri in _ready_stores:
        if _ready_stores[tracking_uri] == _sqlite_file(tracking_uri):
            return
        forget_store(tracking_uri)  # the SQLite file was deleted or replaced since: its new one gets ready below
    check_server_answers(tracking_uri)
    if sqlite_path(tracking_uri) is not None:
        from mmbehave.core.locks import exclusive

        with exclusive(sqlite_path(tracking_uri)):
            mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
    elif tracking_uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES:
        for attempt in range(attempts):
            try:
                mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
                break
            except Exception:  # noqa: BLE001 - alembic / driver errors of a concurrent migration
                if attempt == attempts - 1:
                    raise
                time.sleep(1 + attempt)
    _ready_stores[tracking_uri] = _sqlite_file(tracking_uri)


def _sqlite_file(tracking_uri: str) -> tuple[int, int] | None:
    """Which file a SQLite URI names now, as (device, inode); None for other stores or a file not there."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def forget_store(tracking_uri: str) -> None:
    """Close this process's MLflow connections to ``tracking_uri``, so that its next use opens the store anew.

    MLflow keeps one engine, and a store on it, per URI for the life of the process, and a pooled SQLite connection
    holds the file it opened: after mlflow.db is deleted (or replaced) and made again at the same path, a long-lived
    process (a notebook, a test session) would go on reading the old file, and its writes would fail ("attempt to
    write a readonly database": SQLite refuses to write a deleted file)."""
    _ready_stores.pop(tracking_uri, None)
    # MLflow has no public way to close these: the private names it uses are listed in mlflow_caches() and
    # tests/test_tracking.py fails loudly when an MLflow release renames them (pyproject bounds mlflow < 4).
    caches = mlflow_caches()
    for store_class in caches.store_classes:
        with store_class._engine_map_lock:
            engine = store_class._engine_map.pop(tracking_uri, None)
        if engine is not None:
            engine.dispose()
    for clear in caches.clear_store_caches:  # the stores built on those engines, cached per URI too
        clear()


def forget_stores_in(folder: Path) -> None:
    """``forget_store`` for every store this process has open whose SQLite file lies in ``folder`` (one going away)."""
    cached = {uri for store_class in mlflow_caches().store_classes for uri in store_class._engine_map}
    for uri in cached:
        path = sqlite_path(uri)
        if path is not None and path.is_relative_to(folder):
            forget_store(uri)


@dataclass(frozen=True)
class MlflowCaches:
    store_classes: tuple[type, ...]               # each keeps one engine per URI: _engine_map, _engine_map_lock
    clear_store_caches: tuple[Callable[[], None], ...]  # the store registries' per-URI caches


def mlflow_caches() -> MlflowCaches:
    """What MLflow caches per store URI, by its private names (the one place that knows them)."""
    from mlflow.store.model_registry.sqlalchemy_store import (
        SqlAlchemyStore as RegistryStore,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    registries = (tracking_utils._tracking_store_registry, registry_utils._model_registry_store_registry)
    return MlflowCaches((SqlAlchemyStore, RegistryStore),
                        tuple(type(registry)._get_store_with_resolved_uri.cache_clear for registry in registries
                              if registry is not None))


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The experiment's id, creating it (with a fixed artifact location) if needed; safe under races."""
    prepare_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    except mlflow.exceptions.MlflowException:  # another process created it first
        return client.get_experiment_by_name(name).experiment_id
