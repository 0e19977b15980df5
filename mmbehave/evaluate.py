"""Evaluate a trained model on the test split: metrics, confusion matrices, modality contributions, attention maps.

    python -m mmbehave.evaluate checkpoint=outputs/<date>/<time>/checkpoints/best.pth
    python -m mmbehave.evaluate run_id=<MLflow run id>                 # that training run's best.pth
    python -m mmbehave.evaluate checkpoint=<path> split=val attention.num_clips=8

    checkpoint ─► model (mmbehave.trained_model) ─► test clips (the dataset in its config, its mel statistics)
      ─► probabilities with all modalities and with each removed (mmbehave.analysis.predictions)
      ─► tables, confusion matrices, contributions, attention figures ─► files + the training's MLflow run

Writes into output_dir (default: outputs/evaluate/<date>/<time>/):
    metrics.json                 everything below in one file
    summary.csv, per_class.csv   accuracy / macro-F1 / top-k per head; precision / recall / F1 / support per class
    predictions.csv              per clip: true and predicted class and probability per head
    confusion_<head>.csv / .png  counts, rows true, columns predicted
    modality_contributions.csv / .png   score drop per head and class with each modality removed
    attention/<clip_id>.png      CLS and bottleneck attention over the frames and the log-mel spectrogram
and logs ``<split>/...`` metrics (e.g. ``test/macro_f1``) and those files (artifacts ``evaluation/<split>/``) to
the MLflow run that trained the model. Exit status 2 for a missing checkpoint, unknown run id or bad data.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mmbehave.instantiate import hydra_app
from mmbehave.user_errors import exit_on_user_error

log = logging.getLogger("mmbehave.evaluate")


def split_dataset(trained, split: str, data_root: str | None = None):
    """The ``split`` clips of the dataset the model was trained on (or of ``data_root``, preprocessed the same
    way), labelled with the model's classes and standardised with its mel statistics."""
    from mmbehave.config_checks import ConfigError
    from mmbehave.data.layout import SPLITS
    from mmbehave.data.metadata import DataError, csv_row
    from mmbehave.training.data_setup import make_dataset, prepare_data

    if split not in SPLITS:
        raise ConfigError(f"split={split} is not one of {', '.join(SPLITS)}.")
    data_cfg = OmegaConf.create(OmegaConf.to_container(trained.config.data, resolve=True))
    if data_root:
        data_cfg.root = str(Path(data_root).expanduser().resolve())
    # The training path: the synthetic benchmark is regenerated if this machine lacks it, labels are checked
    # over every split, and only this split's files are read.
    prepared = prepare_data(data_cfg, trained.modalities, splits=(split,),
                            mel_stats={"mel_mean": trained.mel_mean, "mel_std": trained.mel_std})
    table = prepared.tables[split]
    for column, known in (("species", trained.classes.species), ("behavior", trained.classes.behaviors)):
        unknown = table.index[~table[column].isin(known)]
        if len(unknown):
            row = unknown[0]
            raise DataError(f"{prepared.layout.metadata_csv(split)}, row {csv_row(row)}: {column} "
                            f"'{table.at[row, column]}' is not one of the model's classes ({', '.join(known)}).")
    return make_dataset(prepared, split, trained.modalities, trained.classes)


def attention_figures(trained, dataset, predictions, out_dir: Path, count: int, layer: int, device: str) -> list[Path]:
    """Attention figures for ``count`` clips (different species first); [] for a fusion without attention."""
    import torch

    from mmbehave.analysis.attention_figure import plot_clip_attention
    from mmbehave.analysis.attention_maps import (
        clip_attention_maps,
        num_bottlenecks,
        pick_clips,
    )
    from mmbehave.analysis.predictions import model_inputs
    from mmbehave.data.dataset import collate

    if count <= 0:
        return []
    try:
        num_bottlenecks(trained.model)
    except ValueError as reason:
        log.info("No attention figures: %s", reason)
        return []
    indices = pick_clips(dataset.species, count)
    items = [dataset[i] for i in indices]
    inputs, present = model_inputs(collate(items), torch.device(device))
    with torch.no_grad():
        output = trained.model(**inputs, audio_present=present.get("audio"), return_attention=True)
    video_shape = tuple(items[0]["video"].shape) if "video" in items[0] else None
    mel_shape = tuple(items[0]["audio"].shape[1:]) if "audio" in items[0] else None
    layers = len(next(iter(output.attentions.values())))
    if not -layers <= layer < layers:
        from mmbehave.config_checks import ConfigError

        raise ConfigError(f"attention.layer={layer}: the model has {layers} fusion layer(s); use 0..{layers - 1} or -1.")
    maps = clip_attention_maps(trained.model, output.attentions, video_shape, mel_shape, layer)
    shown = f"fusion layer {range(1, layers + 1)[layer]} of {layers}"
    classes, paths = trained.classes, []
    position = {clip_id: i for i, clip_id in enumerate(predictions.clip_ids)}
    for item, clip_maps in zip(items, maps):
        row = position[item["clip_id"]]
        species, behavior = (predictions.probs["all"][head][row] for head in ("species", "behavior"))
        title = (f"{item['clip_id']}: true {classes.species[item['species']]} / {classes.behaviors[item['behavior']]}; "
                 f"predicted {classes.species[species.argmax()]} ({species.max():.2f}) / "
                 f"{classes.behaviors[behavior.argmax()]} ({behavior.max():.2f}); {shown}")
        frames = item["video"].permute(1, 2, 3, 0).numpy() if "video" in item else None
        mel = item["audio"][0].numpy() if "audio" in item else None
        paths.append(plot_clip_attention(frames, mel, clip_maps, title, out_dir / "attention" / f"{item['clip_id']}.png"))
    return paths


def log_to_training_run(tracking_uri: str, run_id: str | None, metrics: dict[str, float], step: int,
                        artifacts: Path | list[Path], artifact_path: str) -> bool:
    """Add metrics and files (a folder's contents, or a list of files) to the training's MLflow run under
    ``artifact_path``, leaving the run's status as it was. False (with a warning) if the run is not in the store."""
    import time

    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.get_run(run_id)
    except (MlflowException, TypeError):
        log.warning("The model's training run %s is not in the MLflow store %s: results are in %s only "
                    "(set mlflow.tracking_uri to the store it was trained with to log them there).", run_id, tracking_uri,
                    artifacts if isinstance(artifacts, Path) else artifacts[0].parent)
        return False
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, float(value), now, step) for key, value in metrics.items()])
    if isinstance(artifacts, Path):
        client.log_artifacts(run_id, str(artifacts), artifact_path=artifact_path)
    else:
        for path in artifacts:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    log.info("Logged %d metrics and the reports (artifacts %s/) to MLflow run %s", len(metrics), artifact_path, run_id)
    return True


def run_evaluation(cfg: DictConfig) -> dict:
    """Everything in the module docstring; returns the metrics.json contents."""
    from mmbehave.analysis.confusion import confusion_frame, plot_confusion
    from mmbehave.analysis.metrics_tables import (
        class_names,
        format_report,
        per_class_tables,
        predictions_table,
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
    from mmbehave.analysis.predictions import HEADS, predict_split
    from mmbehave.trained_model import checkpoint_path, load_trained_model
    from mmbehave.training.data_setup import make_loader
    from mmbehave.training.loop import show_progress
    from mmbehave.training.tracking import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(cfg.mlflow.tracking_uri)
    path = checkpoint_path(cfg.checkpoint, cfg.run_id, tracking_uri)
    trained = load_trained_model(path, cfg.device)
    log.info("Evaluating %s (%s, %s) on the %s split", path, trained.modalities, "int8" if trained.quantization else "fp32", cfg.split)
    dataset = split_dataset(trained, cfg.split, cfg.data_root)
    predictions = predict_split(trained.model, make_loader(dataset, int(cfg.batch_size)), cfg.device,
                                with_variants=bool(cfg.modality_contributions), progress=show_progress())
    out_dir = Path(cfg.output_dir)
    top_k, split = int(cfg.top_k), cfg.split

    summary = summary_metrics(predictions, top_k)
    per_class = per_class_tables(predictions, trained.classes)
    summary_rows = summary_table(summary, len(predictions.clip_ids), top_k)
    write_csv(summary_rows, out_dir / "summary.csv")
    write_csv(per_class, out_dir / "per_class.csv")
    write_csv(predictions_table(predictions, trained.classes), out_dir / "predictions.csv")
    for head in HEADS:
        frame = confusion_frame(predictions.targets[head], predictions.predicted(head), class_names(trained.classes, head))
        write_csv(frame.reset_index(), out_dir / f"confusion_{head}.csv")
        plot_confusion(frame, f"{head} confusion, {split} split ({len(predictions.clip_ids)} clips)",
                       out_dir / f"confusion_{head}.png")
    contributions = contribution_table(predictions, trained.classes)
    if not contributions.empty:
        write_csv(contributions, out_dir / "modality_contributions.csv")
        plot_contributions(contributions, f"Modality contributions, {split} split: score drop when a modality is removed",
                           out_dir / "modality_contributions.png")
    figures = attention_figures(trained, dataset, predictions, out_dir, int(cfg.attention.num_clips),
                                int(cfg.attention.layer), cfg.device)

    metrics = {**summary, **flat_drops(contributions)}
    report = {
        "checkpoint": str(path), "split": split, "num_clips": len(predictions.clip_ids), "top_k": top_k,
        "modalities": list(trained.modalities), "quantization": trained.quantization,
        "mlflow_run_id": trained.mlflow_run_id, "metrics": metrics,
        "per_class": per_class.to_dict(orient="records"),
        "modality_contributions": contributions.to_dict(orient="records"),
        "attention_figures": [str(p) for p in figures],
    }
    write_json(report, out_dir / "metrics.json")

    print(format_report(summary_rows, per_class))
    if not contributions.empty:
        shown = contributions[contributions["metric"].isin(["accuracy", "macro-F1"])]
        print("Modality contributions (drop = all - without):")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{split}/macro_f1 = {summary['macro_f1']:.4f}   reports: {out_dir}")
    if cfg.mlflow.log and trained.mlflow_run_id:
        log_to_training_run(tracking_uri, trained.mlflow_run_id, {f"{split}/{k}": v for k, v in metrics.items()},
                            int(trained.checkpoint.get("epoch", 0)), out_dir, f"evaluation/{split}")
    return report


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(lambda: run_evaluation(cfg))


if __name__ == "__main__":
    main()
