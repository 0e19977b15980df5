"""The distill row of ``python -m mmbehave.benchmark``: is a small student as good as its teacher, how much
faster is it, and do clips nobody labelled help it?

    per seed: the teacher (the configured model, `train`) ─► the student on labels alone (`train student=...`)
              ─► the student distilled (`distill`) ─► distilled with the unlabelled pool (`distill.unlabeled=`)
    each: test macro-F1 (training.test_at_end), its FLOPs a clip (counted); then inference clips/s on
          pre-decoded test inputs (batch 8), teacher against student, torch and, where onnxruntime is there,
          the student's ONNX fp32 and static-int8 files

With ``benchmark.distill_folds=N`` (the field-like benchmark, ``data=synthetic_field``) each repeat is a site fold
instead of a seed (``python -m mmbehave.split folds=N group_by=site_id``, as the pretraining row makes them): every
run of a fold trains on its training sites and is tested on its held-out ones. The generated pool is then left out
(``benchmark.distill_pool=0``: the generator writes unlabelled clips for the built-in benchmark only);
``benchmark.distill_fold_pool=true`` gives each fold its archive instead, the clips of its validation and
held-out sites without their labels.

Every run's result is written (atomically) to ``benchmark.distill_dir`` as it ends, and a run whose result is
there is not run again: a killed measurement continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from mmbehave.core.atomic import write_text_atomic
from mmbehave.perf.processes import run_command

KINDS = ("teacher", "labels_only", "distilled", "distilled_pool")


def _command(kind: str, work: Path, overrides: list[str], seed: int, student: str, teacher: Path | None,
             pool: Path | None, labels_dir: Path | None = None) -> list[str]:
    module = "mmbehave.distill" if kind.startswith("distilled") else "mmbehave.train"
    args = ["-m", module, *overrides, f"seed={seed}", "training.test_at_end=true", "mlflow.log_model=false",
            "print_config=false", f"hydra.run.dir={work / 'run'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            "mlflow.experiment_name=benchmark", f"training.feature_cache_dir={work.parent / 'cache'}"]
    if kind != "teacher":
        args.append(f"student={student}")
    if teacher is not None:
        args.append(f"teacher={teacher}")
    if pool is not None:
        args.append(f"distill.unlabeled={pool}")
    if labels_dir is not None:  # a site fold: its train/val/test tables
        args.append(f"data.labels_dir={labels_dir}")
    return args


def _test_score(work: Path) -> float:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("benchmark").experiment_id])[0]
    return float(run.data.metrics["test/macro_f1"])


def one_run(kind: str, root: Path, overrides: list[str], seed: int, student: str, pool: Path | None,
            labels_dir: Path | None = None) -> dict:
    tag = labels_dir.name if labels_dir is not None else f"seed{seed}"  # fold_<i> or seed<n>
    work = root / f"{kind}_{tag}"
    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    teacher = root / f"teacher_{tag}" / "run" / "checkpoints" / "best.pth" if kind.startswith("distilled") else None
    started = time.perf_counter()
    run_command(_command(kind, work, overrides, seed, student, teacher, pool if kind == "distilled_pool" else None,
                         labels_dir), cwd=work, timeout=7200)
    result = {"kind": kind, "seed": seed, "test_macro_f1": _test_score(work), "seconds": time.perf_counter() - started,
              "checkpoint": str(work / "run" / "checkpoints" / "best.pth")}
    write_text_atomic(done, json.dumps(result, indent=2))
    return result


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "spread": float(np.max(values) - np.min(values)), "values": values}


def distill_comparison(cfg: DictConfig, overrides: list[str]) -> dict:
    from mmbehave.data.synthetic.generator import write_unlabeled_pool

    bench = cfg.benchmark
    root = Path(str(bench.distill_dir)).expanduser().resolve()
    folds = int(bench.get("distill_folds") or 0)
    pool_clips = int(bench.distill_pool)
    if folds:  # each fold's results apart from the built-in benchmark's, per settings
        fingerprint = hashlib.sha256(json.dumps([folds, *sorted(overrides)]).encode()).hexdigest()[:10]
        root = root / f"folds_{fingerprint}"
    root.mkdir(parents=True, exist_ok=True)
    pool = root / "pool"
    if folds:  # (seed, the fold's labels, its pool: the clips its training does not label, or None)
        fold_pool = bool(bench.get("distill_fold_pool"))
        repeats = [(seed, labels, archive_pool(cfg, labels, root) if fold_pool else None)
                   for seed, labels in site_folds(cfg, root, folds)]
    else:
        repeats = [(int(s), None, pool if pool_clips else None) for s in bench.distill_seeds]
    if pool_clips:
        write_unlabeled_pool(pool, cfg.data, pool_clips, num_workers=2)
    seeds = [seed for seed, _, _ in repeats]
    student = str(bench.distill_student)
    kinds = KINDS if repeats[0][2] is not None else tuple(k for k in KINDS if k != "distilled_pool")
    runs = {kind: [one_run(kind, root, overrides, seed, student, pool_of, labels)
                   for seed, labels, pool_of in repeats] for kind in kinds}
    scores = {kind: _spread([r["test_macro_f1"] for r in rows]) for kind, rows in runs.items()}
    kept = [s / t for s, t in zip(scores["distilled"]["values"], scores["teacher"]["values"])]
    speed = inference_speeds(Path(runs["teacher"][0]["checkpoint"]), Path(runs["distilled"][0]["checkpoint"]), root)
    pool_clips = len(pd.read_csv(repeats[0][2])) if folds and repeats[0][2] is not None else pool_clips
    result = {"seeds": seeds, "folds": folds, "student": student, "pool_clips": pool_clips, "test_macro_f1": scores,
              "kept_share": _spread(kept), **speed}
    # the row's ratio: the share of the teacher's macro-F1 the distilled student keeps (target >= 0.95)
    result["ratio"], result["all"] = result["kept_share"]["mean"], 1.0
    write_text_atomic(root / "summary.json", json.dumps(result, indent=2))
    return result


def site_folds(cfg: DictConfig, root: Path, folds: int) -> list[tuple[int, Path]]:
    """(the run's seed, fold_<i>/ label folder) per site fold of the configured dataset (made once)."""
    from mmbehave.data.prepared import make_dataset_files
    from mmbehave.perf.pretraining_rows import make_folds

    if int(cfg.benchmark.distill_pool):
        from mmbehave.core.errors import ConfigError

        raise ConfigError(f"benchmark.distill_folds={folds} needs benchmark.distill_pool=0: the unlabelled pool is "
                          "written for data=synthetic only.")
    make_dataset_files(cfg.data)
    labels = make_folds(root, Path(str(cfg.data.root)).expanduser().resolve(), folds)
    return [(int(cfg.seed), fold) for fold in labels]


def archive_pool(cfg: DictConfig, labels_dir: Path, root: Path) -> Path:
    """A table of the clips a fold's training does not label (its validation and held-out sites): what an archive
    holds unlabelled beside the labelled sites, as in the pretraining row's archive setting (transductive: the
    held-out sites' clips are seen, without labels)."""
    clips = Path(str(cfg.data.root)).expanduser().resolve() / "raw" / "videos"
    ids = pd.concat([pd.read_csv(labels_dir / f"{split}.csv", dtype=str)["clip_id"] for split in ("val", "test")])
    table = root / "pools" / f"{labels_dir.name}.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(table, pd.DataFrame({"path": [str(clips / f"{i}.mp4") for i in ids]}).to_csv(index=False))
    return table


def inference_speeds(teacher: Path, student: Path, root: Path, batch_size: int = 8, repeats: int = 5) -> dict:
    """Counted GFLOP a clip and clips/s on pre-decoded test inputs (the model the bound, not the decoder)."""
    import torch

    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import make_loader, split_dataset
    from mmbehave.models.precision_plan import example_inputs, part_gflop
    from mmbehave.training.loop import model_inputs

    out: dict = {}
    batch = None
    for name, path in (("teacher", teacher), ("student", student)):
        trained = load_trained_model(path, "cpu")
        out[f"{name}_gflop"] = sum(part_gflop(trained.model, example_inputs(trained.preprocess,
                                                                           trained.modalities)).values())
        if batch is None:
            batch = next(iter(make_loader(split_dataset(trained, "test"), batch_size)))
        inputs = model_inputs(batch, torch.device("cpu"))
        out[f"{name}_clips_per_s"] = _clips_per_s(trained.model, inputs, batch_size, repeats)
    out["flops_ratio"] = out["teacher_gflop"] / out["student_gflop"]
    out.update(_onnx_speeds(student, root, batch, batch_size, repeats))
    return out


def _clips_per_s(model, inputs: dict, batch_size: int, repeats: int) -> float:
    import torch

    with torch.inference_mode():
        model(**inputs)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            model(**inputs)
            best = min(best, time.perf_counter() - started)
    return batch_size / best


def _onnx_speeds(student: Path, root: Path, batch: dict, batch_size: int, repeats: int) -> dict:
    """The student's ONNX files (export format=onnx), run by onnxruntime on the same inputs; {} without it."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {}
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.training.loop import model_inputs

    export_dir = root / "student_export"
    if not (export_dir / "model_int8.onnx").is_file():
        run_command(["-m", "mmbehave.export", f"checkpoint={student}", "format=onnx", f"output_dir={export_dir}",
                     f"hydra.run.dir={export_dir / 'hydra'}", "mlflow.log=false"], cwd=root)
    out = {}
    import torch

    inputs = model_inputs(batch, torch.device("cpu"))
    answers = {}
    for name in ("model.onnx", "model_int8.onnx"):
        model = load_trained_model(export_dir / name, "cpu").model
        key = "onnx_fp32" if name == "model.onnx" else "onnx_int8"
        out[f"student_{key}_clips_per_s"] = _clips_per_s(model, inputs, batch_size, repeats)
        answers[key] = {head: logits.argmax(1) for head, logits in model(**inputs).logits.items()}
    out["int8_top1_agreement"] = float(np.mean([(answers["onnx_int8"][h] == answers["onnx_fp32"][h]).float().mean().item()
                                                for h in answers["onnx_fp32"]]))
    return out
