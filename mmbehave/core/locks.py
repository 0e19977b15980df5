"""One writer at a time for things several processes may build at once (parallel sweep trials on a fresh
machine all want the same dataset or feature cache)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive(target: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``<target's folder>/.<target name>.lock`` for the block; others wait for it
    (logging ``waiting`` first, when given, so that a wait is never a silent hang). The lock goes with the
    process: a killed writer never leaves it held."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                log.warning("%s", waiting)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
