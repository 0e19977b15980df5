"""Distil a trained teacher into a small student, and log the student's run to MLflow.

    python -m mmbehave.distill teacher=outputs/<date>/<time>/checkpoints/best.pth            # student=small_fused
    python -m mmbehave.distill teacher=models:/mmbehave/3 student=video_only                 # for silent cameras
    python -m mmbehave.distill teacher=<best.pth> distill.unlabeled=archive/ distill.min_confidence=0.6
    python -m mmbehave.distill teacher=<best.pth> hparams_search=student                     # sweep the student
    python -m mmbehave.train student=small_fused                                             # the same student, labels only

    teacher (frozen, eval) ─► its logits for the training clips and the unlabelled ones, once, cached
    student (conf/student/, an ordinary model) ─► trained as `train` trains, on
        (1 - distill.alpha) * the labels' loss + distill.alpha * T² * KL to the teacher at distill.temperature
    ─► best.pth: an ordinary checkpoint (evaluate, predict, export format=onnx take it as they take any)

Everything of ``python -m mmbehave.train`` applies: its keys, resume=, SIGTERM, MLflow (experiment ``distill``;
tags teacher_source, teacher_sha256, teacher_run_id). The teacher must have the student's heads,
classes and preprocessing; the first difference is one line, before any run is opened.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("distill")
def main(cfg: DictConfig) -> float | list[float]:
    from mmbehave.distilling.run import run_distillation

    return run_distillation(cfg)


if __name__ == "__main__":
    main()
