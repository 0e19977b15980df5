"""Evaluate a trained model on the test split: metrics, confusion matrices, modality contributions, attention maps.

    python -m mmbehave.evaluate checkpoint=outputs/<date>/<time>/checkpoints/best.pth
    python -m mmbehave.evaluate run_id=<MLflow run id>                 # that training run's best.pth
    python -m mmbehave.evaluate checkpoint=<path> split=val attention.num_clips=8

    checkpoint ─► model (mmbehave.checkpoints.trained_model) ─► test clips (the dataset in its config, its mel statistics)
      ─► probabilities with all modalities and with each removed (mmbehave.analysis.predictions)
      ─► tables, confusion matrices, contributions, attention figures ─► files + the training's MLflow run

Writes into output_dir (default: outputs/evaluate/<date>/<time>/):
    metrics.json                 everything below in one file
    summary.csv, per_class.csv   per head: accuracy, macro-F1, top-k, macro P / R, micro-F1, macro AP, frequent / rare
                                 macro-F1; per class: precision, recall, F1, support, average precision, training
                                 clips and frequent or rare (metrics.json: also micro P / R, frequent / rare macro AP)
    predictions.csv              per clip: true and predicted class and probability per head
    confusion_<head>.csv / .png  counts, rows true, columns predicted
    modality_contributions.csv / .png   score drop per head and class with each modality removed
    attention/<clip_id>.png      CLS and bottleneck attention over the frames and the log-mel spectrogram
and logs ``<split>/...`` metrics (e.g. ``test/macro_f1``) and those files (artifacts ``evaluation/<split>/``) to
the MLflow run that trained the model. Exit status 2 for a missing checkpoint, unknown run id or bad data.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("evaluate")
def main(cfg: DictConfig) -> None:
    from mmbehave.analysis.evaluation import run_evaluation

    run_evaluation(cfg)


if __name__ == "__main__":
    main()
