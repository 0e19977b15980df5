"""The benchmark's ``precision`` row: does ``precision=auto`` keep the answers, and what does it buy?

    per seed (benchmark.precision_seeds): the configured model trained in fp32 (the real train command,
        benchmark.precision_epochs) ─► its test split predicted with every part in fp32, with ``auto``'s plan,
        and with every part in bf16 ─► per head: top-1 agreement with fp32 (a multi-label head: per label at its
        thresholds), test macro-F1; clips/s of the model pass (evaluate's, predict's) and of encoding the split
        (the feature cache's ``encode_split``)
    over seeds ─► the lowest agreement, the largest macro-F1 change, and fp32's own spread over the seeds

A change of macro-F1 smaller than the seed spread is one a user could not tell from training noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from torch.utils.data import Subset

from mmbehave.models.precision_plan import plan_and_apply
from mmbehave.perf.measurements import train_command
from mmbehave.perf.processes import run_command

COMPARED = ("auto", "bf16")  # each against fp32


def head_agreement(reference, other, heads, thresholds: dict) -> dict[str, float]:
    """{head: share of answers ``other`` gives as ``reference`` does} (a multi head: per clip and label)."""
    shares = {}
    for head in heads:
        cut = np.asarray(thresholds.get(head.name, 0.5)) if head.multi else 0.5
        shares[head.name] = float(np.mean(reference.predicted(head.name, thresholds=cut) ==
                                          other.predicted(head.name, thresholds=cut)))
    return shares


def predicted_in(trained, dataset, precision: str, batch_size: int, min_gflop: float):
    """(SplitPredictions, clips/s, the plan) of the test split with ``precision`` planned."""
    from mmbehave.data.prepared import make_loader

    device = next(trained.model.parameters()).device
    plan = plan_and_apply(trained.model, precision, device, trained.preprocess, trained.modalities, min_gflop)
    warm = Subset(dataset, range(min(len(dataset), 2 * batch_size)))
    predictions, speed = timed_predictions(trained.model, make_loader(dataset, batch_size), make_loader(warm, batch_size),
                                           trained.heads, device)
    return predictions, speed, plan


def timed_predictions(model, batches, warm, heads, device) -> tuple:
    """(SplitPredictions of ``batches``, clips/s), after one untimed pass over ``warm``: a few batches settle the
    kernels and each weight's cast (the whole split would only double the time)."""
    from mmbehave.analysis.predictions import predict_split

    predict_split(model, warm, heads=heads, device=device, with_variants=False)
    started = time.perf_counter()
    predictions = predict_split(model, batches, heads=heads, device=device, with_variants=False)
    return predictions, len(predictions.clip_ids) / (time.perf_counter() - started)


def encoding_speed(trained, dataset, precision_plan, batch_size: int) -> float | None:
    """Clips/s of building the video feature cache (``encode_split``) in the plan's precision for the encoder."""
    from mmbehave.training.feature_cache import encode_split

    if "video" not in trained.modalities:
        return None
    device = next(trained.model.parameters()).device
    encoder, precision = trained.model.video_encoder, precision_plan.parts["video_encoder"]
    started = time.perf_counter()
    encode_split(encoder, dataset, "video", device, batch_size, precision)
    return len(dataset) / (time.perf_counter() - started)


def compare_precisions(checkpoint: Path, batch_size: int, min_gflop: float) -> dict:
    """fp32 against each of COMPARED on one trained model's test split."""
    from mmbehave.analysis.metrics_tables import summary_metrics
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import split_dataset

    trained = load_trained_model(checkpoint, "cpu")
    dataset = split_dataset(trained, "test")
    reference, reference_speed, reference_plan = predicted_in(trained, dataset, "fp32", batch_size, min_gflop)
    row = {"clips": len(dataset), "fp32": {"clips_per_s": reference_speed,
                                           "macro_f1": summary_metrics(reference, 1)["macro_f1"],
                                           "encode_clips_per_s": encoding_speed(trained, dataset, reference_plan,
                                                                                batch_size)}}
    for precision in COMPARED:
        predictions, speed, plan = predicted_in(trained, dataset, precision, batch_size, min_gflop)
        row[precision] = {"plan": plan.line(), "clips_per_s": speed,
                          "macro_f1": summary_metrics(predictions, 1)["macro_f1"],
                          "agreement": head_agreement(reference, predictions, trained.heads, trained.thresholds),
                          "encode_clips_per_s": encoding_speed(trained, dataset, plan, batch_size)}
    return row


def precision_comparison(cfg: DictConfig, overrides: list[str], scratch: Path) -> dict:
    bench = cfg.benchmark
    min_gflop = float(cfg.hardware.get("bf16_min_gflop", 1.0))
    seeds = [int(seed) for seed in bench.precision_seeds]
    per_seed = []
    for seed in seeds:
        work = scratch / f"seed_{seed}"
        run_command(train_command(overrides, work, f"seed={seed}", f"training.num_epochs={int(bench.precision_epochs)}",
                                  "hardware.precision=fp32", "mlflow.log_model=false"), cwd=scratch)
        per_seed.append(compare_precisions(work / "run" / "checkpoints" / "best.pth", int(bench.batch_size), min_gflop))
    fp32_scores = [row["fp32"]["macro_f1"] for row in per_seed]
    summary = {"seeds": seeds, "epochs": int(bench.precision_epochs), "clips": per_seed[0]["clips"],
               "fp32_macro_f1": fp32_scores, "seed_spread": max(fp32_scores) - min(fp32_scores), "per_seed": per_seed}
    for precision in COMPARED:
        summary[precision] = {
            "plan": per_seed[0][precision]["plan"],
            "lowest_agreement": {head: min(row[precision]["agreement"][head] for row in per_seed)
                                 for head in per_seed[0][precision]["agreement"]},
            "largest_macro_f1_change": max(abs(row[precision]["macro_f1"] - row["fp32"]["macro_f1"]) for row in per_seed),
            "speedup": float(np.mean([row[precision]["clips_per_s"] / row["fp32"]["clips_per_s"] for row in per_seed])),
            "encode_speedup": _mean_ratio(per_seed, precision, "encode_clips_per_s"),
        }
    summary["ratio"], summary["all"] = min(summary["auto"]["lowest_agreement"].values()), 1.0
    return summary


def _mean_ratio(per_seed: list[dict], precision: str, key: str) -> float | None:
    ratios = [row[precision][key] / row["fp32"][key] for row in per_seed if row["fp32"][key]]
    return float(np.mean(ratios)) if ratios else None
