"""The benchmark's ``int8`` row: which int8 model to ship for a CPU. Today's dynamic int8 (``export``, torch.ao: the
Linear layers' weights in int8, activations quantised per batch) against static int8 (``export format=onnx``,
onnxruntime QDQ: weights and activations in int8 at calibrated ranges, convolutions too, on the CPU's VNNI or
AMX-INT8 units), beside fp32 and ``precision=auto`` (bf16 where it pays), on the configured model.

    per seed (benchmark.precision_seeds): the model trained (the real train command, benchmark.precision_epochs)
        ─► export (format=pth) and export format=onnx, the real commands (their reports: batch-1 latency, 1 thread)
        ─► the test split held in memory (the model the bound, not the decoder), predicted by each runtime at
           benchmark.batch_size with torch's threads: clips/s, top-1 agreement with torch fp32 per head, macro-F1
    over seeds ─► per runtime: mean clips/s and its ratio to torch fp32, the lowest agreement per head
    ─► the int8 kept: the faster of the two among those that agree with fp32 on at least 0.98 of the clips on
       every head (the issue's rule)

Each seed's result is written to ``benchmark.int8_dir/settings_<fingerprint>/seed_<n>.json`` as it ends and not
measured again: a killed measurement continues. The fingerprint is of the overrides, so another model is another
folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mmbehave.core.atomic import write_text_atomic
from mmbehave.perf.measurements import train_command
from mmbehave.perf.processes import run_command

MIN_AGREEMENT = 0.98  # the bar for an int8 model to be kept
# runtime ─► (the file it loads from the export folders, the precision planned for a torch model)
RUNTIMES = {"torch_fp32": ("model_fp32.pth", "fp32"), "torch_auto": ("model_fp32.pth", "auto"),
            "torch_dynamic_int8": ("model_int8.pth", "fp32"), "onnx_fp32": ("model.onnx", None),
            "onnx_static_int8": ("model_int8.onnx", None)}
INT8 = ("torch_dynamic_int8", "onnx_static_int8")


def exported_models(seed_dir: Path, overrides: list[str], seed: int, epochs: int) -> tuple[Path, Path]:
    """Train (unless done) and export both ways (unless done); (the .pth export folder, the ONNX one)."""
    checkpoint = seed_dir / "run" / "checkpoints" / "best.pth"
    if not checkpoint.is_file():
        run_command(train_command(overrides, seed_dir, f"seed={seed}", f"training.num_epochs={epochs}",
                                  "mlflow.log_model=false", "print_config=false"), cwd=seed_dir, timeout=7200)
    folders = {"pth": seed_dir / "export_pth", "onnx": seed_dir / "export_onnx"}
    for file_format, folder in folders.items():
        if not (folder / "export_report.json").is_file():
            run_command(["-m", "mmbehave.export", f"checkpoint={checkpoint}", f"format={file_format}",
                         f"output_dir={folder}", f"hydra.run.dir={folder / 'hydra'}", "mlflow.log=false"],
                        cwd=seed_dir, timeout=7200)
    return folders["pth"], folders["onnx"]


def in_memory_batches(checkpoint: Path, batch_size: int) -> tuple[list[dict], object]:
    """The test split's batches, read once (pre-decoded), and the trained model they belong to."""
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import make_loader, split_dataset

    trained = load_trained_model(checkpoint, "cpu")
    return list(make_loader(split_dataset(trained, "test"), batch_size)), trained


def runtime_pass(path: Path, precision: str | None, batches: list[dict], trained) -> tuple[object, float, str]:
    """(SplitPredictions, clips/s, the plan's line or the runtime) of ``path``'s model over ``batches``."""
    import torch

    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.models.precision_plan import plan_and_apply
    from mmbehave.perf.precision_rows import timed_predictions

    loaded = load_trained_model(path, "cpu")
    described = "onnxruntime"
    if precision is not None:
        described = plan_and_apply(loaded.model, precision, torch.device("cpu"), loaded.preprocess,
                                   loaded.modalities).line()
    predictions, speed = timed_predictions(loaded.model, batches, batches[:2], trained.heads, torch.device("cpu"))
    return predictions, speed, described


def measure_seed(pth_dir: Path, onnx_dir: Path, batch_size: int) -> dict:
    from mmbehave.analysis.metrics_tables import summary_metrics
    from mmbehave.perf.precision_rows import head_agreement

    batches, trained = in_memory_batches(pth_dir / "model_fp32.pth", batch_size)
    folders = {"model_fp32.pth": pth_dir, "model_int8.pth": pth_dir, "model.onnx": onnx_dir,
               "model_int8.onnx": onnx_dir}
    latency = _batch1_latencies(pth_dir, onnx_dir)
    row, reference = {}, None
    for runtime, (file_name, precision) in RUNTIMES.items():
        predictions, speed, described = runtime_pass(folders[file_name] / file_name, precision, batches, trained)
        reference = predictions if reference is None else reference
        row[runtime] = {"clips_per_s": speed, "plan": described, "latency_ms_batch1": latency.get(runtime),
                        "size_mb": (folders[file_name] / file_name).stat().st_size / 2**20,
                        "macro_f1": summary_metrics(predictions, 1, thresholds=trained.thresholds)["macro_f1"],
                        "agreement": head_agreement(reference, predictions, trained.heads, trained.thresholds)}
    return {"clips": len(reference.clip_ids), "batch_size": batch_size, "runtimes": row}


def _batch1_latencies(pth_dir: Path, onnx_dir: Path) -> dict[str, float]:
    """The export commands' own latency (batch 1, latency.threads threads), by this row's runtime names."""
    names = {("pth", "fp32"): "torch_fp32", ("pth", "int8"): "torch_dynamic_int8",
             ("onnx", "onnx_fp32"): "onnx_fp32", ("onnx", "onnx_int8"): "onnx_static_int8"}
    out = {}
    for file_format, folder in (("pth", pth_dir), ("onnx", onnx_dir)):
        for model in json.loads((folder / "export_report.json").read_text())["models"]:
            if (file_format, model["model"]) in names:
                out[names[(file_format, model["model"])]] = float(model["latency_ms"])
    return out


def int8_comparison(cfg: DictConfig, overrides: list[str]) -> dict:
    from mmbehave.checkpoints.onnx_model import require_onnxruntime

    require_onnxruntime()  # the static int8 model is onnxruntime's: say so before a model is trained for nothing
    bench = cfg.benchmark
    seeds, epochs = [int(s) for s in bench.precision_seeds], int(bench.precision_epochs)
    settings = {"overrides": sorted(overrides), "epochs": epochs}
    fingerprint = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]
    root = Path(str(bench.int8_dir)).expanduser().resolve() / f"settings_{fingerprint}"
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "settings.json", json.dumps(settings, indent=2))
    per_seed = []
    for seed in seeds:
        done = root / f"seed_{seed}.json"
        if not done.is_file():
            pth_dir, onnx_dir = exported_models(root / f"seed_{seed}", overrides, seed, epochs)
            write_text_atomic(done, json.dumps(measure_seed(pth_dir, onnx_dir, int(bench.batch_size)), indent=2))
        per_seed.append(json.loads(done.read_text()))
    result = summarise(per_seed, seeds)
    result["results_dir"] = str(root)
    write_text_atomic(root / "summary.json", json.dumps(result, indent=2))
    return result


def summarise(per_seed: list[dict], seeds: list[int]) -> dict:
    """Per runtime over seeds; the int8 kept; the row's ratio: the kept int8's clips/s ÷ torch fp32's."""
    runtimes = {}
    for runtime in RUNTIMES:
        entries = [seed["runtimes"][runtime] for seed in per_seed]
        speeds = [e["clips_per_s"] for e in entries]
        base = [seed["runtimes"]["torch_fp32"]["clips_per_s"] for seed in per_seed]
        runtimes[runtime] = {
            "clips_per_s": float(np.mean(speeds)),
            "speedup": float(np.mean([s / b for s, b in zip(speeds, base)])),
            "lowest_agreement": {head: min(e["agreement"][head] for e in entries) for head in entries[0]["agreement"]},
            "macro_f1": [e["macro_f1"] for e in entries], "size_mb": entries[0]["size_mb"],
            "latency_ms_batch1": entries[0]["latency_ms_batch1"], "plan": entries[0]["plan"]}
    agreeing = [r for r in INT8 if min(runtimes[r]["lowest_agreement"].values()) >= MIN_AGREEMENT]
    kept = max(agreeing, key=lambda r: runtimes[r]["clips_per_s"]) if agreeing else None
    fp32 = [seed["runtimes"]["torch_fp32"]["macro_f1"] for seed in per_seed]
    return {"seeds": seeds, "clips": per_seed[0]["clips"], "batch_size": per_seed[0]["batch_size"],
            "runtimes": runtimes, "kept": kept, "min_agreement": MIN_AGREEMENT,
            "seed_spread": float(max(fp32) - min(fp32)),
            "ratio": runtimes[kept]["speedup"] if kept else 0.0, "all": 1.0}
