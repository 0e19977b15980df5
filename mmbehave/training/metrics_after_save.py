"""An epoch's metrics reach MLflow only once its checkpoint is on disk, also when a thread writes it
(``checkpoints.background_writer``): a run killed in between is an epoch behind in MLflow (resume fills it in),
never ahead of its checkpoint (resume would log that epoch twice). Logged from the training thread, which owns
the MLflow run, between steps and at the end."""

from __future__ import annotations

import threading

from mmbehave.tracking.runs import TrackedRun


class MetricsAfterSave:
    def __init__(self, tracker: TrackedRun):
        self.tracker = tracker
        self.waiting: list[tuple[threading.Event, dict[str, float], int]] = []

    def saved_flag(self) -> threading.Event:
        """Set (by the writer) once the epoch's files are written."""
        return threading.Event()

    def add(self, saved: threading.Event, metrics: dict[str, float], step: int) -> None:
        """``metrics`` may still be added to until the next ``flush`` (the epoch's own time, say)."""
        self.waiting.append((saved, metrics, step))

    def flush(self) -> None:
        """Log, in epoch order, the metrics whose checkpoints are written (cheap when there are none)."""
        while self.waiting and self.waiting[0][0].is_set():
            _, metrics, step = self.waiting.pop(0)
            self.tracker.log_metrics(metrics, step=step)
