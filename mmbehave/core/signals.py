"""SIGTERM (what SLURM, Kubernetes and ``kill`` send) and Ctrl-C stop a training run the same way.

    with stop_on_signals(resume_hint): ...     # SIGTERM / SIGINT raise RunInterrupted inside the block

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
        raise RunInterrupted(signum, hint())

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
