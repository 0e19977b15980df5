"""What ``python -m mmbehave.export format=onnx`` does: the model as ``model.onnx`` (fp32) and ``model_int8.onnx``
(static int8), each checked and compared with the torch model it came from.

    trained model ─► model.onnx (checkpoints.onnx_graph) ─► onnxruntime vs torch on a batch of the split's clips
                     (and the first clip again without each modality): probabilities within onnx.atol, else an
                     error and no file
                  ─► model_int8.onnx (checkpoints.onnx_int8), calibrated on calibration.clips clips of
                     calibration.split
    torch fp32, onnx fp32, onnx int8, each loaded back as a user would ─► size, latency per clip (batch 1),
        the split's macro-F1, top-1 agreement with torch fp32 per head, largest probability difference from it
        ─► printed table, export_report.json / .csv, export/<model>_* metrics on the training's MLflow run

Both files are written under temp names and renamed only once both are made and the fp32 one is checked: a
failed or interrupted export leaves the folder as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mmbehave.analysis.export_comparison import latency_ms

log = logging.getLogger("mmbehave.export")

# The report's rows: torch fp32 is the reference the ONNX files are held to.
RUNTIMES = {"torch_fp32": "torch, fp32 (the checkpoint)", "onnx_fp32": "onnxruntime, fp32",
            "onnx_int8": "onnxruntime, static int8 (QDQ)"}


def onnx_paths(out_dir: Path) -> dict[str, Path]:
    return {"onnx_fp32": out_dir / "model.onnx", "onnx_int8": out_dir / "model_int8.onnx"}


def read_onnx_options(cfg: DictConfig) -> tuple[float, int, str]:
    """(onnx.atol, calibration.clips, calibration.split), checked before any work."""
    from mmbehave.core.errors import ConfigError
    from mmbehave.data.layout import SPLITS

    atol, clips, split = float(cfg.onnx.atol), int(cfg.calibration.clips), str(cfg.calibration.split)
    if not atol > 0:
        raise ConfigError(f"onnx.atol={cfg.onnx.atol} must be above 0 (a probability difference).")
    if clips < 1:
        raise ConfigError(f"calibration.clips={cfg.calibration.clips} must be at least 1.")
    if split not in SPLITS:
        raise ConfigError(f"calibration.split={split} is not one of {', '.join(SPLITS)}.")
    return atol, clips, split


def model_batch(items: list[dict]) -> dict:
    """Model inputs with their present flags (keyword arguments of the classifier) from dataset items."""
    import torch

    from mmbehave.analysis.predictions import encoder_inputs_and_presence
    from mmbehave.data.dataset import collate

    inputs, present = encoder_inputs_and_presence(collate(items), torch.device("cpu"))
    return {**inputs, **{f"{m}_present": flags for m, flags in present.items()}}


def check_batch(dataset, trained, size: int) -> dict:
    """The first ``size`` clips of the split, then the first clip again with each modality marked absent (when the
    model has two), so that the check also covers the masks a clip without sound takes."""
    import torch

    batch = model_batch([dataset[i] for i in range(min(size, len(dataset)))])
    if len(trained.modalities) > 1:
        for modality in trained.modalities:
            extra = {name: value[:1].clone() for name, value in batch.items()}
            extra[f"{modality}_present"][:] = False
            batch = {name: torch.cat([batch[name], extra[name]]) for name in batch}
    return batch


def calibration_batches(dataset, inputs: list[str], clips: int, batch_size: int):
    """Batches (graph input name -> array) of ``clips`` clips drawn evenly from ``dataset`` (a seeded shuffle: the
    label tables are often sorted by class, and the first clips would calibrate on a few classes only)."""
    order = np.random.default_rng(0).permutation(len(dataset))[:clips]
    for first in range(0, len(order), batch_size):
        batch = model_batch([dataset[int(i)] for i in order[first:first + batch_size]])
        yield {name: batch[name].numpy() for name in inputs}


def write_onnx_files(trained, paths: dict[str, Path], dataset, cfg: DictConfig) -> dict[str, float]:
    """model.onnx and model_int8.onnx, both renamed into place only once both are made and model.onnx agrees with
    torch; returns {head: max probability difference} of that check."""
    import time

    from mmbehave.checkpoints.onnx_graph import (
        check_agrees,
        check_exportable,
        input_names,
        json_metadata,
        write_onnx_graph,
    )
    from mmbehave.checkpoints.onnx_int8 import quantize_int8
    from mmbehave.checkpoints.onnx_model import load_onnx_model, require_onnxruntime
    from mmbehave.core.atomic import atomic_path
    from mmbehave.data.prepared import split_dataset

    atol, clips, split = read_onnx_options(cfg)
    require_onnxruntime()
    check_exportable(trained)
    metadata = json_metadata(trained)
    with atomic_path(paths["onnx_fp32"]) as fp32, atomic_path(paths["onnx_int8"]) as int8:
        started = time.perf_counter()
        write_onnx_graph(trained, fp32, metadata)
        log.info("Exported the graph in %.1f s; checking it against torch", time.perf_counter() - started)
        diffs = check_agrees(trained, load_onnx_model(fp32).model, check_batch(dataset, trained, int(cfg.batch_size)),
                             atol, paths["onnx_fp32"])
        calibration = dataset if split == cfg.split else split_dataset(trained, split, cfg.data_root)
        inputs = input_names(trained.modalities)
        started = time.perf_counter()
        quantize_int8(fp32, int8, calibration_batches(calibration, inputs, clips, int(cfg.batch_size)), metadata,
                      {"clips": min(clips, len(calibration)), "split": split})
        log.info("Quantised to int8 on %d %s clips in %.1f s", min(clips, len(calibration)), split,
                 time.perf_counter() - started)
    log.info("Wrote %s and %s (onnxruntime vs torch: %s)", paths["onnx_fp32"], paths["onnx_int8"],
             ", ".join(f"{head} {diff:.2g}" for head, diff in diffs.items()))
    return diffs


def run_onnx_export(cfg: DictConfig, loaded, paths: dict[str, Path]) -> dict:
    from mmbehave.analysis.export_comparison import publish_report, report_header
    from mmbehave.data.prepared import split_dataset

    source, trained, out_dir = loaded.path, loaded.trained, paths["onnx_fp32"].parent
    dataset = split_dataset(trained, cfg.split, cfg.data_root)
    check = write_onnx_files(trained, paths, dataset, cfg)
    timed = [dataset[i % len(dataset)] for i in range(int(cfg.latency.clips))]
    rows = compare_runtimes({"torch_fp32": source, **paths}, trained, dataset, timed, cfg)
    report = {"format": "onnx", **report_header(source, cfg, dataset, timed), "onnx_atol": float(cfg.onnx.atol),
              "export_check_max_prob_diff": check, "models": rows}
    keys = ("size_mb", "latency_ms", f"{cfg.split}_macro_f1", "agreement_with_fp32", "max_abs_prob_diff")
    logged = publish_report(report, out_dir, cfg, loaded.tracking_uri, trained, keys,
                            hidden=["file", "runtime", "latency_ms_mean"],
                            float_format=lambda v: f"{v:.3g}" if abs(v) < 1e-3 and v else f"{v:.3f}")
    print_onnx_summary(rows, report, paths, trained.mlflow_run_id if logged else None)
    return report


def compare_runtimes(paths: dict[str, Path], trained, dataset, timed: list[dict], cfg: DictConfig) -> list[dict]:
    """Per file, loaded back as a user would (``load_trained_model``): size, latency (batch 1, latency.threads
    threads), the split's macro-F1 per head, and against torch fp32: top-1 agreement per head (a multi head: per
    label) and the largest probability difference."""
    import torch

    from mmbehave.analysis.metrics_tables import summary_metrics
    from mmbehave.analysis.predictions import predict_split
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import make_loader

    threads = torch.get_num_threads()
    if cfg.latency.threads:
        torch.set_num_threads(int(cfg.latency.threads))  # before loading: a session takes torch's count
    rows, predicted = [], {}
    names = [head.name for head in trained.heads]
    try:
        for name, path in paths.items():
            model = load_trained_model(path, "cpu").model
            predictions = predict_split(model, make_loader(dataset, int(cfg.batch_size)), device="cpu",
                                        with_variants=False, heads=trained.heads)
            predicted[name] = predictions
            scores = summary_metrics(predictions, top_k=1, thresholds=trained.thresholds)
            rows.append({"model": name, "runtime": RUNTIMES[name], "file": str(path),
                         "size_mb": path.stat().st_size / 2**20,
                         **latency_ms(model, timed, int(cfg.latency.warmup)),
                         **{f"{head}_macro_f1": scores[f"{head}_macro_f1"] for head in names},
                         f"{cfg.split}_macro_f1": scores["macro_f1"]})
    finally:
        torch.set_num_threads(threads)
    reference = predicted["torch_fp32"]
    for row in rows:
        mine = predicted[row["model"]]
        agreement = {head: float((mine.predicted(head) == reference.predicted(head)).mean()) for head in names}
        row.update({f"{head}_agreement": value for head, value in agreement.items()})
        row["agreement_with_fp32"] = float(np.mean(list(agreement.values())))
        row["max_abs_prob_diff"] = max(float(np.abs(mine.probs["all"][head] - reference.probs["all"][head]).max())
                                       for head in names)
    return rows


def print_onnx_summary(rows: list[dict], report: dict, paths: dict[str, Path], run_id: str | None) -> None:
    from mmbehave.core.summary import print_summary

    by = {row["model"]: row for row in rows}

    def line(name: str) -> str:
        row = by[name]
        return (f"{row['file']}  ({row['size_mb']:.1f} MB, {row['latency_ms']:.1f} ms a clip, agreement with torch "
                f"{row['agreement_with_fp32']:.3f})")

    print_summary("Export done.", [
        ("onnx fp32", line("onnx_fp32")),
        ("onnx int8", line("onnx_int8")),
        ("torch fp32", f"{by['torch_fp32']['latency_ms']:.1f} ms a clip (batch 1, {report['latency_threads']} "
                       "thread(s))"),
        ("report", str(paths["onnx_fp32"].parent / "export_report.csv")),
        *([("MLflow run", f"{run_id} (metrics export/onnx_*, export/torch_fp32_*)")] if run_id else [])],
        [f"python -m mmbehave.predict checkpoint={paths['onnx_int8']} input=<clips folder> output=predictions.csv"])
