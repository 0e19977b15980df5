"""``python -m mmbehave.distill``, top to bottom: the teacher loaded and checked against this run's heads,
classes and preprocessing (one line, before any run is opened), then a training run that carries it."""

from __future__ import annotations

from omegaconf import DictConfig


def run_distillation(cfg: DictConfig) -> float | list[float]:
    from mmbehave.analysis.evaluate_at_end import evaluate_at_end
    from mmbehave.data.layout import DatasetLayout
    from mmbehave.data.metadata import class_lists, read_metadata
    from mmbehave.data.prepared import make_dataset_files
    from mmbehave.distilling.distillation import Distillation
    from mmbehave.distilling.hooks import TeacherTags
    from mmbehave.distilling.settings import DistillSettings
    from mmbehave.distilling.teacher import check_teacher_classes, check_teacher_inputs, load_teacher
    from mmbehave.sweeps.hooks import sweep_hooks
    from mmbehave.tracking.store import resolve_tracking_uri
    from mmbehave.training.hooks import HookChain
    from mmbehave.training.run import run_training
    from mmbehave.training.settings import read_run_settings

    distill = DistillSettings.from_config(cfg)
    run = read_run_settings(cfg)  # every config mistake first, in one line
    teacher = load_teacher(distill.teacher, resolve_tracking_uri(run.mlflow.tracking_uri), distill.teacher_precision,
                           distill.cache_dir / "downloads", run.hardware.device)
    check_teacher_inputs(teacher, run.heads, run.data.preprocess)  # before the dataset's files are made or remade
    make_dataset_files(cfg.data)
    layout = DatasetLayout(run.data.root, run.data.labels_dir)
    check_teacher_classes(teacher, run.heads, class_lists(read_metadata(layout, heads=run.heads), run.heads))
    distillation = Distillation(distill, teacher)
    return run_training(cfg, hooks=HookChain(sweep_hooks(), TeacherTags(distillation), evaluate_at_end(cfg)),
                        distillation=distillation)
