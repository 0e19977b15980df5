"""SIGTERM (what SLURM, Kubernetes and ``kill`` send) and Ctrl-C stop a training run the same way.

    with stop_on_signals(resume_hint): ...     # SIGTERM / SIGINT raise RunInterrupted inside the block
        with signals_held(): ...               # ... but not inside this one: after it (a database write)

``RunInterrupted`` is a ``KeyboardInterrupt``, so everything that already closes up on Ctrl-C (the MLflow run
ends KILLED, the atomic checkpoint keeps the last finished epoch) does so on SIGTERM too; the command wrapper
then prints the exact ``resume=`` command and exits with 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# signals_held: how deep, the signal that arrived meanwhile, and the hint of the stop_on_signals block around it
_held = {"depth": 0, "pending": None, "hint": lambda: ""}


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the run. ``signum``: which; the message says how to continue."""

    def __init__(self, signum: int, hint: str = "") -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.hint = hint
        super().__init__(f"{self.signal_name}" + (f"; {hint}" if hint else ""))


@contextlib.contextmanager
def stop_on_signals(hint: Callable[[], str] = lambda: "") -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT raise ``RunInterrupted(signum, hint())``. Only in the main thread
    (the only one Python delivers signals to); elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        if _held["depth"]:  # inside signals_held: raise when it ends
            _held["pending"] = signum
            return
        raise RunInterrupted(signum, hint())

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    _held["hint"] = hint
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """A stop signal that arrives inside the block is raised when the block ends, not in the middle of it: an
    MLflow write cut by an exception can leave the store's session unusable, and then the run could not even be
    marked KILLED. (Outside stop_on_signals the default handlers apply, unchanged.)"""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        signum = _held["pending"]
        if not _held["depth"] and signum is not None:
            _held["pending"] = None
            raise RunInterrupted(signum, _held["hint"]())
