"""The work of ``python -m mmbehave.evaluate`` (its docstring lists the files and metrics): the model from its
file, the split's clips read as in training, probabilities with all modalities and with each removed, then the
tables, confusion matrices, contributions and attention figures, logged to the model's training run."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.analysis.attention_figure import attention_figures
from mmbehave.analysis.metrics_tables import (
    format_report,
    per_class_tables,
    predictions_table,
    subset_metrics,
    summary_metrics,
    summary_table,
    write_csv,
    write_json,
)
from mmbehave.analysis.modality_contributions import (
    contribution_table,
    flat_drops,
    plot_contributions,
)
from mmbehave.analysis.predictions import predict_split
from mmbehave.checkpoints.loading import ModelSource, load_command_model
from mmbehave.core.progress import show_progress
from mmbehave.core.summary import print_summary
from mmbehave.data.prepared import make_loader, split_dataset
from mmbehave.tracking.runs import log_to_finished_run

log = logging.getLogger("mmbehave.evaluate")


def run_evaluation(cfg: DictConfig) -> dict:
    """Everything in the module docstring; returns the metrics.json contents."""
    from mmbehave.core.precision import read_precision

    loaded = load_command_model(ModelSource.from_config(cfg), cfg.device, Path(cfg.output_dir) / "model",
                                precision=read_precision(cfg.get("precision", "auto"), str(cfg.device), "precision"))
    path, tracking_uri, trained = loaded.path, loaded.tracking_uri, loaded.trained
    log.info("Evaluating %s (%s, %s) on the %s split", path, trained.modalities,
             "int8" if trained.quantization else "fp32", cfg.split)
    dataset = split_dataset(trained, cfg.split, cfg.data_root)
    predictions = predict_split(trained.model, make_loader(dataset, int(cfg.batch_size)), device=cfg.device,
                                with_variants=bool(cfg.modality_contributions), progress=show_progress(),
                                heads=trained.heads)
    out_dir = Path(cfg.output_dir)
    top_k, split = int(cfg.top_k), cfg.split

    train_counts = trained.train_counts
    if train_counts is None:
        log.info("%s records no training class counts (trained before they were saved): no frequent/rare scores.", path)
    thresholds = trained.thresholds  # the multi-label heads', chosen on the validation split
    summary = summary_metrics(predictions, top_k, train_counts=train_counts, thresholds=thresholds)
    per_class = per_class_tables(predictions, trained.classes, train_counts=train_counts, thresholds=thresholds)
    summary_rows = summary_table(summary, len(predictions.clip_ids), top_k, [head.name for head in trained.heads])
    write_csv(summary_rows, out_dir / "summary.csv")
    write_csv(per_class, out_dir / "per_class.csv")
    write_csv(predictions_table(predictions, trained.classes, thresholds), out_dir / "predictions.csv")
    write_confusions(trained, predictions, split, out_dir)
    contributions = contribution_table(predictions, trained.classes, thresholds)
    if not contributions.empty:
        write_csv(contributions, out_dir / "modality_contributions.csv")
        plot_contributions(contributions, f"Modality contributions, {split} split: score drop when a modality is removed",
                           out_dir / "modality_contributions.png")
    figures = attention_figures(trained, dataset, predictions, out_dir, int(cfg.attention.num_clips),
                                int(cfg.attention.layer), cfg.device)

    by_presence = subset_metrics(predictions, top_k, train_counts, thresholds)
    metrics = {**summary, **by_presence, **flat_drops(contributions)}
    report = {
        "checkpoint": str(path), "split": split, "num_clips": len(predictions.clip_ids), "top_k": top_k,
        "modalities": list(trained.modalities), "quantization": trained.quantization,
        "mlflow_run_id": trained.mlflow_run_id, "precision": loaded.precision.as_dict(), "metrics": metrics,
        "per_class": per_class.to_dict(orient="records"),
        "modality_contributions": contributions.to_dict(orient="records"),
        "attention_figures": [str(p) for p in figures],
    }
    write_json(report, out_dir / "metrics.json")

    print_report(format_report(summary_rows, per_class), contributions, by_presence, split, summary["macro_f1"], out_dir)
    logged = bool(cfg.mlflow.log and trained.mlflow_run_id)
    if logged:
        log_to_finished_run(tracking_uri, trained.mlflow_run_id, {f"{split}/{k}": v for k, v in metrics.items()},
                            int(trained.checkpoint.get("epoch", 0)), out_dir, f"evaluation/{split}")
    print_summary("Evaluation done.", [
        (f"{split}/macro_f1", f"{summary['macro_f1']:.4f} ({len(predictions.clip_ids)} clips)"),
        ("reports", f"{out_dir} (summary.csv, per_class.csv, predictions.csv, confusion_*.png)"),
        *([("MLflow run", f"{trained.mlflow_run_id} (metrics {split}/*)")] if logged else [])],
        [f"python -m mmbehave.predict checkpoint={path} input=<clips folder> output=predictions.csv",
         *([f"python -m mmbehave.export checkpoint={path}"]  # an export is not exported again
           if trained.runtime == "torch" and not trained.quantization else [])])
    return report


def write_confusions(trained, predictions, split: str, out_dir: Path) -> None:
    """confusion_<head>.csv / .png of every single-label head (a multi-label head's labels are not exclusive:
    per_class.csv has each one's precision, recall and AP)."""
    from mmbehave.analysis.confusion import confusion_frame, plot_confusion
    from mmbehave.analysis.metrics_tables import classes_of, write_csv

    for head in trained.heads:
        if head.multi:
            continue
        frame = confusion_frame(predictions.targets[head.name], predictions.predicted(head.name),
                                classes_of(trained.classes, head.name))
        write_csv(frame.reset_index(), out_dir / f"confusion_{head.name}.csv")
        plot_confusion(frame, f"{head.name} confusion, {split} split ({len(predictions.clip_ids)} clips)",
                       out_dir / f"confusion_{head.name}.png")


def print_report(tables: str, contributions, by_presence: dict, split: str, macro_f1: float, out_dir: Path) -> None:
    print(tables)
    if not contributions.empty:
        shown = contributions[contributions["metric"].isin(["accuracy", "macro-F1"])]
        print("Modality contributions (drop = all - without):")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for name in sorted({key.split("/")[0] for key in by_presence}):
        print(f"{split}/{name}/macro_f1 = {by_presence[f'{name}/macro_f1']:.4f} "
              f"({int(by_presence[f'{name}/num_clips'])} clips)")
    print(f"\n{split}/macro_f1 = {macro_f1:.4f}")
