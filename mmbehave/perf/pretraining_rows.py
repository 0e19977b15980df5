"""The pretraining row of ``python -m mmbehave.benchmark``: is in-domain self-supervised pretraining worth its
CPU time, and how many labels does it save?

    the field-like benchmark's 800 clips ─► 3 folds by site (python -m mmbehave.split folds=3 group_by=site_id)
    pretraining (python -m mmbehave.pretrain), each once:
        archive         every clip of the dataset, labels unread (an archive holds the held-out sites' clips too)
        training sites  per fold, that fold's train and val clips only
    per fold, per label fraction (benchmark.pt_fractions: data.label_fraction, events whole, val/test whole):
        scratch         the default model from random weights
        archive         the same, both encoders from the archive pretraining
        training sites  the same, from that fold's own pretraining
      ─► test macro-F1 over the heads and the behaviour head's rare-class macro-F1 on the fold's held-out sites

Every run's result is written (atomically) under ``benchmark.pt_dir`` as it ends, and a finished run is not run
again: a killed measurement continues where it stopped. Cost: pretraining seconds per 1,000 clips an epoch, from
the pretraining runs' own clock.
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

CONDITIONS = ("scratch", "archive", "training_sites")


def finished(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def make_folds(root: Path, data_root: Path, folds: int) -> list[Path]:
    """fold_<i>/ label folders holding out whole sites (each written once)."""
    folder = root / "folds"
    wanted = [folder / f"fold_{i}" for i in range(folds)]
    if all((fold / "test.csv").is_file() for fold in wanted):
        return wanted
    tables = [pd.read_csv(data_root / "raw" / "metadata" / f"{s}.csv", dtype=str, keep_default_na=False)
              for s in ("train", "val", "test")]
    labels = root / "all_labels.csv"
    write_text_atomic(labels, pd.concat(tables, ignore_index=True).to_csv(index=False))
    run_command(["-m", "mmbehave.split", f"labels={labels}", f"output_dir={folder}", "group_by=site_id",
                 f"folds={folds}", "overwrite=true", f"hydra.run.dir={root / 'split_run'}"], cwd=root, timeout=600)
    return wanted


def pretrain_run(root: Path, name: str, overrides: list[str], extra: list[str], epochs: int) -> dict:
    """One pretraining in its own process: {"video": folder, "audio": file, "seconds_per_1000": ...}."""
    work = root / f"pretrain_{name}"
    done = finished(work / "result.json")
    if done is not None:
        return done
    data = [o for o in overrides if o.startswith("data") or o.startswith("hardware")]
    run_command(["-m", "mmbehave.pretrain", *data, *extra, f"pretrain.num_epochs={epochs}",
                 f"hydra.run.dir={work / 'run'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
                 f"pretrain.cache_dir={root / 'clips'}"], cwd=work, timeout=4 * 3600)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])[0]
    speeds = [m.value for m in client.get_metric_history(run.info.run_id, "pretrain/clips_per_s")]
    losses = sorted(client.get_metric_history(run.info.run_id, "pretrain/masked_loss"), key=lambda m: m.step)
    retrieval = sorted(client.get_metric_history(run.info.run_id, "pretrain/retrieval_top1"), key=lambda m: m.step)
    out = work / "run" / "pretrained"
    result = {"video": str(out / "video"), "audio": str(out / "audio_resnet18.pth"),
              "clips": int(run.data.params["pretrain/clips"]), "epochs": epochs,
              "seconds_per_1000_clips_epoch": 1000 / float(np.median(speeds)),
              "masked_loss_first_last": [losses[0].value, losses[-1].value],
              "retrieval_top1_first_last": [retrieval[0].value, retrieval[-1].value] if retrieval else None}
    write_text_atomic(work / "result.json", json.dumps(result, indent=2))
    return result


def train_run(root: Path, overrides: list[str], fold: Path, fraction: float, condition: str, pretrained: dict | None,
              epochs: int, seed: int) -> dict:
    work = root / fold.name / condition / f"fraction_{fraction:g}"
    done = finished(work / "result.json")
    if done is not None:
        return done
    started = time.perf_counter()
    args = ["-m", "mmbehave.train", *overrides, f"seed={seed}", f"data.labels_dir={fold}",
            f"data.label_fraction={fraction}", f"training.num_epochs={epochs}", "training.test_at_end=true",
            "mlflow.log_model=false", "print_config=false", f"hydra.run.dir={work / 'run'}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}", "mlflow.experiment_name=benchmark_pretraining"]
    if pretrained is not None:
        args += ["video_encoder.pretrained=true", f"video_encoder.model_name={pretrained['video']}",
                 "video_encoder.on_load_failure=raise", "audio_encoder.pretrained=true",
                 f"audio_encoder.weights_path={pretrained['audio']}", "audio_encoder.on_load_failure=raise"]
    run_command(args, cwd=work, timeout=3600)
    metrics = json.loads((work / "run" / "evaluation" / "test" / "metrics.json").read_text())["metrics"]
    result = {"test_macro_f1": float(metrics["macro_f1"]),
              "rare_macro_f1": float(metrics.get("behavior_rare_macro_f1", float("nan"))),
              "train_clips": train_clips(work / "mlflow.db"), "seconds": time.perf_counter() - started}
    write_text_atomic(work / "result.json", json.dumps(result, indent=2))
    return result


def train_clips(store: Path) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    run = client.search_runs([client.get_experiment_by_name("benchmark_pretraining").experiment_id])[0]
    return int(run.data.params["train_clips"])


def pretraining_comparison(cfg: DictConfig, overrides: list[str]) -> dict:
    from mmbehave.data.prepared import make_dataset_files

    bench = cfg.benchmark
    make_dataset_files(cfg.data)  # the field-like benchmark, generated on first use
    fractions = [float(f) for f in bench.pt_fractions]
    settings = [int(bench.pt_folds), int(bench.pt_pretrain_epochs), int(bench.pt_train_epochs), *overrides]
    # Results are kept per settings (more fractions extend a measurement; other settings start their own)
    fingerprint = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]
    root = Path(str(bench.pt_dir)).expanduser().resolve() / f"settings_{fingerprint}"
    root.mkdir(parents=True, exist_ok=True)
    data_root = Path(str(cfg.data.root)).expanduser().resolve()
    folds = make_folds(root, data_root, int(bench.pt_folds))
    epochs, seed = int(bench.pt_train_epochs), int(cfg.seed)
    archive = pretrain_run(root, "archive", overrides, ["pretrain.splits=[train,val,test]"],
                           int(bench.pt_pretrain_epochs))
    scores: dict[str, dict[float, list[dict]]] = {c: {f: [] for f in fractions} for c in CONDITIONS}
    own_pretraining = []
    for fold in folds:
        own = pretrain_run(root, f"training_sites_{fold.name}", overrides,
                           [f"data.labels_dir={fold}", "pretrain.splits=[train,val]"], int(bench.pt_pretrain_epochs))
        own_pretraining.append(own)
        for fraction in fractions:
            for condition, pretrained in (("scratch", None), ("archive", archive), ("training_sites", own)):
                scores[condition][fraction].append(train_run(root, overrides, fold, fraction, condition, pretrained,
                                                             epochs, seed))
    return summarise(root, fractions, scores, archive, own_pretraining, len(folds))


def summarise(root: Path, fractions: list[float], scores: dict, archive: dict, own: list[dict], folds: int) -> dict:
    table = {}
    for condition, by_fraction in scores.items():
        table[condition] = {
            "fractions": fractions,
            "train_clips": [float(np.mean([r["train_clips"] for r in by_fraction[f]])) for f in fractions],
            "f1_mean": [float(np.mean([r["test_macro_f1"] for r in by_fraction[f]])) for f in fractions],
            "f1_std": [float(np.std([r["test_macro_f1"] for r in by_fraction[f]])) for f in fractions],
            "rare_mean": [float(np.nanmean([r["rare_macro_f1"] for r in by_fraction[f]])) for f in fractions],
            "rare_std": [float(np.nanstd([r["rare_macro_f1"] for r in by_fraction[f]])) for f in fractions]}
    lifts = {}
    for condition in ("archive", "training_sites"):
        lifts[condition] = [table[condition]["f1_mean"][i] - table["scratch"]["f1_mean"][i] for i in range(len(fractions))]
    beyond = {c: [lift > table[c]["f1_std"][i] + table["scratch"]["f1_std"][i] for i, lift in enumerate(lifts[c])]
              for c in lifts}
    result = {"folds": folds, "fractions": fractions, "conditions": table, "lift": lifts, "lift_beyond_spread": beyond,
              "pretraining": {"archive": archive, "training_sites": own},
              "seconds_per_1000_clips_epoch": archive["seconds_per_1000_clips_epoch"]}
    # the row's ratio: the archive-pretrained model's test macro-F1 at the smallest fraction against scratch's
    result["pretrained_f1"], result["scratch_f1"] = table["archive"]["f1_mean"][0], table["scratch"]["f1_mean"][0]
    result["ratio"] = result["pretrained_f1"] / result["scratch_f1"] if result["scratch_f1"] else float("nan")
    write_text_atomic(root / "summary.json", json.dumps(result, indent=2))
    result["figure"] = str(draw(result, root / "pretraining.png"))
    return result


NAMES = {"scratch": "from scratch", "archive": "pretrained on the archive (all sites)",
         "training_sites": "pretrained on the training sites only"}


def draw(result: dict, path: Path) -> Path:
    from mmbehave.core.figures import plt, save_figure

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for condition, row in result["conditions"].items():
        x = [100 * f for f in row["fractions"]]
        for ax, mean, std in ((axes[0], "f1_mean", "f1_std"), (axes[1], "rare_mean", "rare_std")):
            ax.errorbar(x, row[mean], yerr=row[std], marker="o", capsize=3, label=NAMES[condition])
    axes[0].set_title("test macro-F1 (both heads), held-out sites")
    axes[1].set_title("behaviour: rare-class macro-F1")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in result["fractions"]], [f"{100 * f:g}%" for f in result["fractions"]])
        ax.set_xlabel("share of the training labels")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"In-domain pretraining: mean ± std over {result['folds']} site folds")
    return save_figure(figure, path)
