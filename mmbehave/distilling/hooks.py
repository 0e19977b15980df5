"""The student run's MLflow record of its teacher: tags when the run opens, the pool's counts when it ends."""

from __future__ import annotations

from typing import Any, Callable

from mmbehave.training.hooks import RunHooks


class TeacherTags(RunHooks):
    def __init__(self, distillation) -> None:
        self.distillation = distillation

    def run_tags(self) -> dict[str, str]:
        return self.distillation.teacher.tags()

    def run_finished(self, value: float | list[float], tag_run: Callable[[dict[str, Any]], None]) -> None:
        tag_run(dict(self.distillation.counts))
