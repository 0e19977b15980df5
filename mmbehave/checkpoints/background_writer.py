"""Checkpoints written by a thread of their own while training goes on (``training.background_saves``).

    end of epoch e ─► submit(states, paths): each tensor copied in memory (milliseconds), so the next steps can
                      change the weights ─► the writer thread: save_checkpoint, atomic as ever (temp + rename)
                      ─► then(): what must wait until the files are on disk (the epoch's MLflow metrics)
    leaving the ``with`` block (the run's end, an error, SIGTERM's exit) ─► every write joined first

One write at a time and in order, so ``latest.pth`` never goes back to an older epoch; a failed write (a full
disk) is raised in the training thread at the next submit or at the end, never lost. What it buys: the epoch
no longer waits for pickling and writing ``latest.pth`` with its optimizer state (three times the weights).
What it costs: one in-memory copy of the saved states while they are written.
"""

from __future__ import annotations

import copy
import queue
import threading
from pathlib import Path
from typing import Any, Callable

import torch

from mmbehave.checkpoints.files import save_checkpoint


def snapshot(value: Any) -> Any:
    """``value`` with every tensor copied, and containers rebuilt, so that later changes do not reach it."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(item) for item in value)
    return copy.deepcopy(value)


class CheckpointWriter:
    """``submit`` returns at once; ``join`` waits for every write so far (and raises the first failure)."""

    def __init__(self, background: bool = True):
        self.background = background
        self._queue: queue.Queue = queue.Queue()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CheckpointWriter:
        if self.background:
            self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if exc_info[0] is None:
            self._raise_failure()

    def submit(self, writes: list[tuple[dict, Path]], then: Callable[[], None] | None = None) -> None:
        """Write each (state, path) in order, then call ``then`` (in the writer thread: keep it to a flag)."""
        self._raise_failure()
        if not self.background:
            for state, path in writes:
                save_checkpoint(state, path)
            if then is not None:
                then()
            return
        self._queue.put(([(snapshot(state), path) for state, path in writes], then))

    def join(self) -> None:
        if self._thread is not None:
            self._queue.join()
        self._raise_failure()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._failure is None:  # after a failure nothing more is written: the next submit raises it
                    writes, then = job
                    for state, path in writes:
                        save_checkpoint(state, path)
                    if then is not None:
                        then()
            except BaseException as error:  # noqa: BLE001 - handed to the training thread, raised there
                self._failure = error
            finally:
                self._queue.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
