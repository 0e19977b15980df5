"""The work of ``python -m mmbehave.export`` (its docstring says what each file is): the model as fp32 and dynamic
int8 files (``checkpoints.export``), each loaded back as a user would and compared on size, CPU latency (batch 1)
and the split's macro-F1, with how often int8 agrees with fp32. ``format=onnx`` hands over to ``onnx_comparison``
once the model is loaded: ONNX graphs instead of .pth files, compared the same way."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("mmbehave.export")
FORMATS = ("pth", "onnx")  # format=: torch files (this module), or ONNX graphs (onnx_comparison)


def latency_ms(model, clips: list[dict], warmup: int) -> dict[str, float]:
    """Median and mean milliseconds per clip for ``model`` on single clips (batch 1), after ``warmup`` runs."""
    import numpy as np
    import torch

    from mmbehave.analysis.predictions import encoder_inputs_and_presence
    from mmbehave.data.dataset import collate

    batches = [encoder_inputs_and_presence(collate([clip]), torch.device("cpu")) for clip in clips]
    timings = []
    with torch.no_grad():
        for index in range(warmup + len(batches)):
            inputs, present = batches[index % len(batches)]
            started = time.perf_counter()
            model(**inputs, **{f"{m}_present": flags for m, flags in present.items()})
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000)
    return {"latency_ms": float(np.median(timings)), "latency_ms_mean": float(np.mean(timings))}


def run_export(cfg: DictConfig) -> dict:

    from mmbehave.checkpoints.export import export_state
    from mmbehave.checkpoints.files import save_checkpoint
    from mmbehave.checkpoints.loading import ModelSource, load_command_model
    from mmbehave.checkpoints.trained_model import (
        quantize_dynamic_int8,
    )
    from mmbehave.core.errors import CheckpointError, ConfigError, InputError
    from mmbehave.core.guards import resolved, same_file
    from mmbehave.data.prepared import split_dataset

    file_format = str(cfg.get("format") or "pth")
    if file_format not in FORMATS:
        raise ConfigError(f"format={file_format} is not one of {' | '.join(FORMATS)}.")
    if int(cfg.latency.clips) < 1:
        raise ConfigError(f"latency.clips={cfg.latency.clips} must be at least 1.")
    out_dir = Path(cfg.output_dir)
    if file_format == "onnx":
        from mmbehave.analysis.onnx_comparison import onnx_paths, read_onnx_options, run_onnx_export

        read_onnx_options(cfg)  # a wrong value stops the export before the model loads
        paths = onnx_paths(out_dir)
    else:
        paths = {"fp32": out_dir / "model_fp32.pth", "int8": out_dir / "model_int8.pth"}

    def refuse_overwriting(source: Path) -> None:  # exporting an export into its own folder would replace it
        if any(resolved(path) == resolved(source) or same_file(path, source) for path in paths.values()):
            raise InputError(f"output_dir={out_dir} would replace the checkpoint being exported ({source}); choose "
                             "another output_dir=.")

    loaded = load_command_model(ModelSource.from_config(cfg), "cpu", out_dir / "model", before_loading=refuse_overwriting)
    source, tracking_uri, trained = loaded.path, loaded.tracking_uri, loaded.trained
    if trained.runtime != "torch":
        raise CheckpointError(f"{source} is already an ONNX export; pass the training checkpoint it came from.")
    if trained.quantization:
        raise CheckpointError(f"{source} is already an int8 export; pass the training checkpoint it came from.")
    if file_format == "onnx":
        return run_onnx_export(cfg, loaded, paths)
    save_checkpoint(export_state(trained, trained.model), paths["fp32"])
    save_checkpoint(export_state(trained, quantize_dynamic_int8(trained.model)), paths["int8"])
    log.info("Wrote %s and %s", paths["fp32"], paths["int8"])

    dataset = split_dataset(trained, cfg.split, cfg.data_root)
    timed = [dataset[i % len(dataset)] for i in range(int(cfg.latency.clips))]
    rows = compare_files(paths, trained, dataset, timed, cfg)
    report = {**report_header(source, cfg, dataset, timed), "models": rows}
    logged = publish_report(report, out_dir, cfg, tracking_uri, trained, ("size_mb", "latency_ms", f"{cfg.split}_macro_f1"),
                            hidden=["file", "latency_ms_mean"], float_format=lambda v: f"{v:.3f}")
    print_export_summary(rows, report, paths, trained.mlflow_run_id if logged else None)
    return report


def report_header(source: Path, cfg: DictConfig, dataset, timed: list) -> dict:
    """What every export report says first: the source, the split scored and how latency was timed."""
    import torch

    return {"source_checkpoint": str(source), "source_size_mb": source.stat().st_size / 2**20, "split": cfg.split,
            "num_clips": len(dataset), "latency_clips": len(timed),
            "latency_threads": int(cfg.latency.threads or torch.get_num_threads())}


def publish_report(report: dict, out_dir: Path, cfg: DictConfig, tracking_uri: str, trained, metric_keys: tuple,
                   hidden: list[str], float_format) -> bool:
    """export_report.json / .csv, the printed table (without ``hidden`` columns) and, with mlflow.log, each row's
    ``metric_keys`` as export/<model>_<key> on the training's run; True when they were logged."""
    import pandas as pd

    from mmbehave.analysis.metrics_tables import write_csv, write_json
    from mmbehave.tracking.runs import log_to_finished_run

    rows = report["models"]
    table = pd.DataFrame(rows)
    write_json(report, out_dir / "export_report.json")
    write_csv(table, out_dir / "export_report.csv")
    print(table.drop(columns=hidden).to_string(index=False, float_format=float_format))
    logged = bool(cfg.mlflow.log and trained.mlflow_run_id)
    if logged:
        log_to_finished_run(tracking_uri, trained.mlflow_run_id,
                            {f"export/{row['model']}_{key}": row[key] for row in rows for key in metric_keys},
                            int(trained.checkpoint.get("epoch", 0)),
                            [out_dir / "export_report.json", out_dir / "export_report.csv"], "export")
    return logged


def print_export_summary(rows: list[dict], report: dict, paths: dict[str, Path], run_id: str | None) -> None:
    from mmbehave.core.summary import print_summary

    fp32, int8 = rows[0], rows[1]
    print_summary("Export done.", [
        ("fp32", f"{paths['fp32']}  ({fp32['size_mb']:.1f} MB, {fp32['latency_ms']:.1f} ms a clip)"),
        ("int8", f"{paths['int8']}  ({int8['size_mb']:.1f} MB, {int8['latency_ms']:.1f} ms a clip; batch 1, "
                 f"{report['latency_threads']} thread(s))"),
        ("report", str(paths["fp32"].parent / "export_report.csv")),
        *([("MLflow run", f"{run_id} (metrics export/*)")] if run_id else [])],
        [f"python -m mmbehave.predict checkpoint={paths['int8']} input=<clips folder> output=predictions.csv"])


def compare_files(paths: dict[str, Path], trained, dataset, timed: list[dict], cfg: DictConfig) -> list[dict]:
    """Per file (fp32, int8), loaded back as a user would: size, latency (batch 1, latency.threads threads),
    the split's macro-F1 per head, and how often it gives fp32's answer (a multi head: per label)."""
    import numpy as np
    import torch

    from mmbehave.analysis.metrics_tables import summary_metrics
    from mmbehave.analysis.predictions import predict_split
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import make_loader

    threads = torch.get_num_threads()
    if cfg.latency.threads:
        torch.set_num_threads(int(cfg.latency.threads))
    rows, predicted = [], {}
    try:
        for precision, path in paths.items():
            model = load_trained_model(path, "cpu").model  # what a user of the file gets, not the in-memory copy
            predictions = predict_split(model, make_loader(dataset, int(cfg.batch_size)), device="cpu",
                                        with_variants=False, heads=trained.heads)
            predicted[precision] = predictions
            scores = summary_metrics(predictions, top_k=1, thresholds=trained.thresholds)
            rows.append({"model": precision, "file": str(path), "size_mb": path.stat().st_size / 2**20,
                         **latency_ms(model, timed, int(cfg.latency.warmup)),
                         **{f"{head.name}_macro_f1": scores[f"{head.name}_macro_f1"] for head in trained.heads},
                         f"{cfg.split}_macro_f1": scores["macro_f1"]})
    finally:
        torch.set_num_threads(threads)
    names = [head.name for head in trained.heads]
    for row in rows:
        row["agreement_with_fp32"] = float(np.mean([
            (predicted[row["model"]].predicted(head) == predicted["fp32"].predicted(head)).mean() for head in names]))
    return rows
