"""``python -m mmbehave.review``: read and check everything (queue, model, earlier decisions), then serve the page.

Every refusal comes before the server starts: a queue that is not one, a reviewed table naming clips or
classes the queue does not know, a port already taken.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmbehave.core.errors import ConfigError
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.reviewing.decisions import DecisionStore
from mmbehave.reviewing.media import MediaCache
from mmbehave.reviewing.queue import ReviewQueue, read_queue

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ReviewSession:
    queue: ReviewQueue
    store: DecisionStore
    media: MediaCache
    reviewer: str
    host: str
    port: int


def model_facts(cfg) -> tuple[dict[str, list[str]] | None, PreprocessSettings]:
    """(the model's classes, its preprocessing) from checkpoint= / model=, else (None, data.* defaults)."""
    from mmbehave.checkpoints.loading import ModelSource
    from mmbehave.checkpoints.sources import checkpoint_path

    source = ModelSource.from_config(cfg)
    if not (source.checkpoint or source.run_id or source.model_uri):
        return None, PreprocessSettings.from_config(cfg.data)
    from mmbehave.checkpoints.files import read_checkpoint

    path = checkpoint_path(source.checkpoint, source.run_id, source.tracking_uri, source.model_uri,
                           Path(tempfile.mkdtemp(prefix="mmbehave-review-")))
    stored = read_checkpoint(path)
    return {head: list(names) for head, names in stored["classes"].items()}, PreprocessSettings(**stored["preprocess"])


def open_session(cfg) -> ReviewSession:
    classes, preprocess = model_facts(cfg)
    queue = read_queue(Path(cfg.queue) if cfg.get("queue") else None,
                       Path(cfg.predictions) if cfg.get("predictions") else None, classes)
    store = DecisionStore(queue)
    media_dir = Path(cfg.media_cache) if cfg.get("media_cache") else queue.table.with_name(
        f"{queue.reviewed_path.stem.removesuffix('_reviewed')}_review_media")
    return ReviewSession(queue, store, MediaCache(media_dir, preprocess), str(cfg.reviewer), str(cfg.host),
                         int(cfg.port))


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one line and the printed address (port=0 too)
    is the one that answers."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"port={port}: cannot listen on {host}:{port} ({error.strerror}); give another, e.g. "
                          f"port={port + 1}, or port=0 for any free one.") from error
    return sock


def export_package(session: ReviewSession, folder: str, package: str | None) -> None:
    """camtrap_dp=<folder>: the decisions so far as a Camtrap DP package, then exit."""
    from mmbehave.reviewing.camtrap_export import export_decisions

    written, clips = export_decisions(session.store.all(), session.queue, Path(folder).expanduser(), package)
    print(f"Wrote the decisions on {clips} clips as a Camtrap DP package (classificationMethod human) in {written}")


def import_package(session: ReviewSession, package: str) -> None:
    """camtrap_dp_import=<package>: a package reviewed elsewhere as decisions on the queue, then exit."""
    from mmbehave.reviewing.camtrap_import import import_decisions

    clips = import_decisions(package, session.store)
    print(f"Took the human observations of {clips} clips from {package} as decisions in {session.store.path}")


def serve(session: ReviewSession) -> None:
    import uvicorn

    from mmbehave.reviewing.app import make_app

    if session.host not in LOOPBACK:
        log.warning("host=%s: anyone on the network who can reach this machine can see the clips and write decisions "
                    "to %s. Use host=127.0.0.1 (the default) unless that is what you want.", session.host,
                    session.store.path)
    sock = bound_socket(session.host, session.port)
    done = session.store.all()
    print(f"Reviewing {len(session.queue.clips)} clips of {session.queue.table} ({done['path'].nunique()} with "
          f"decisions already); decisions go to {session.store.path}.\n"
          f"Open http://{session.host}:{sock.getsockname()[1]}/  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(make_app(session.queue, session.store, session.media, session.reviewer),
                            log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
