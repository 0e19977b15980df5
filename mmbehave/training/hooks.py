"""How outer layers attach to a training run without the run knowing them: a sweep's trial (``sweeps.hooks``),
a benchmark's clock (``perf.first_step``). The run calls these at fixed points; every default does nothing.

    run_started(run_id)                    the MLflow run is open
    step_done()                            after every optimizer step
    epoch_reported(epoch, metrics)         after an epoch is saved and logged ─► RunStop to stop the run there
    run_stopped(stop) / run_finished(...)  how the run ended, and its objective value
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class RunStop:
    """A hook asks the run to stop after ``epoch`` (0-based): ``reason`` is logged, ``tags`` go to the MLflow
    run, which ends ``status`` (KILLED: it did not run its course)."""

    epoch: int
    reason: str
    tags: dict[str, Any] = field(default_factory=dict)
    status: str = "KILLED"


class RunHooks:
    """The points a run offers. Subclasses override what they need."""

    part_of_sweep = False            # a sweep's job: the sweep handles signals and logs only its best model

    def torch_threads(self) -> int | None:
        """Intra-op threads when jobs share the cores (parallel trials); None: the config decides."""
        return None

    def run_name(self) -> str | None:
        return None

    def run_tags(self) -> dict[str, str]:
        return {}

    def resume_checkpoint(self, output_dir: Path) -> Path | None:
        """A checkpoint this run must continue although resume= is not set (a requeued cluster job)."""
        return None

    def run_started(self, run_id: str) -> None:
        pass

    def step_done(self) -> None:
        pass

    def epoch_reported(self, epoch: int, metrics: dict[str, float]) -> RunStop | None:
        return None

    def run_stopped(self, stop: RunStop) -> None:
        pass

    def run_finished(self, value: float | list[float], tag_run: Callable[[dict[str, Any]], None]) -> None:
        """``value``: what the run returns; ``tag_run`` adds tags to its MLflow run."""


class HookChain(RunHooks):
    """Several hooks as one: each is called in turn; the first non-None answer wins."""

    def __init__(self, *hooks: RunHooks | None) -> None:
        self.hooks = [hook for hook in hooks if hook is not None]
        self.part_of_sweep = any(hook.part_of_sweep for hook in self.hooks)

    def _first(self, name: str, *args: Any) -> Any:
        for hook in self.hooks:
            answer = getattr(hook, name)(*args)
            if answer:
                return answer
        return None

    def torch_threads(self) -> int | None:
        return self._first("torch_threads")

    def run_name(self) -> str | None:
        return self._first("run_name")

    def run_tags(self) -> dict[str, str]:
        return {key: value for hook in self.hooks for key, value in hook.run_tags().items()}

    def resume_checkpoint(self, output_dir: Path) -> Path | None:
        return self._first("resume_checkpoint", output_dir)

    def run_started(self, run_id: str) -> None:
        for hook in self.hooks:
            hook.run_started(run_id)

    def step_done(self) -> None:
        for hook in self.hooks:
            hook.step_done()

    def epoch_reported(self, epoch: int, metrics: dict[str, float]) -> RunStop | None:
        stops = [hook.epoch_reported(epoch, metrics) for hook in self.hooks]  # every hook hears every epoch
        return next((stop for stop in stops if stop is not None), None)

    def run_stopped(self, stop: RunStop) -> None:
        for hook in self.hooks:
            hook.run_stopped(stop)

    def run_finished(self, value: float | list[float], tag_run: Callable[[dict[str, Any]], None]) -> None:
        for hook in self.hooks:
            hook.run_finished(value, tag_run)
