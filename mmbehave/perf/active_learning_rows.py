"""The active_learning row of ``python -m mmbehave.benchmark``: what does each reviewed clip buy, and which clips
should a person review first?

    per seed: a few labelled clips per class of each head (benchmark.al_start_per_class) ─► round 0: a model from scratch
    per strategy, each round: the last model scores the unlabelled training clips ─► the k it ranks first are
              "reviewed" (their true labels join the labelled set) ─► a short run warm-started from the last model
              (training.init_from) ─► test macro-F1 and the behaviour head's rare-class macro-F1 on held-out sites
    strategies: margin       least certain first: the smallest gap between the top two answers of any single head
                             (what predict's review queue and the review page order by)
                disagreement the fused answer against each modality's own (the model run on video alone, on audio
                             alone): the clips the two senses read differently
                random       the baseline every strategy must beat
    reference:  the whole training split labelled, trained from scratch: the score the curves are put against

Every run's result is written (atomically) under ``benchmark.al_dir`` as it ends, and a finished run is not run
again: a killed measurement continues where it stopped. The validation split stays labelled throughout (each
round's best epoch is picked on it); the test split holds sites no training clip comes from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.perf.processes import run_command

STRATEGIES = ("margin", "disagreement", "random")
SHARE_OF_ALL = 0.95            # the labels each strategy needs to reach this share of the all-labels score


@dataclasses.dataclass(frozen=True)
class Plan:
    root: Path                  # benchmark.al_dir
    data_root: Path             # the field-like dataset
    overrides: list[str]        # the benchmark's own training overrides, passed on to every run
    start_per_class: int
    rounds: int
    k: int
    first_epochs: int
    round_epochs: int
    all_epochs: int


def read_tables(data_root: Path) -> dict[str, pd.DataFrame]:
    return {split: pd.read_csv(data_root / "raw" / "metadata" / f"{split}.csv", dtype=str, keep_default_na=False)
            for split in ("train", "val", "test")}


def start_set(train: pd.DataFrame, per_class: int, seed: int, heads: tuple[str, ...] = ("species", "behavior")) -> list[str]:
    """``per_class`` clips of each class of each head, drawn with the seed: what a person labels before any model
    exists (every class, as training needs each class the validation split holds)."""
    rng = np.random.default_rng(seed)
    picked: set[str] = set()
    for head in heads:
        for _, rows in sorted(train.groupby(head), key=lambda item: item[0]):
            have = picked & set(rows["clip_id"])
            left = rows[~rows["clip_id"].isin(picked)]["clip_id"].to_numpy()
            need = min(max(0, per_class - len(have)), len(left))
            picked.update(rng.choice(left, size=need, replace=False).tolist())
    return sorted(picked)


def write_labels(folder: Path, tables: dict[str, pd.DataFrame], labelled: list[str]) -> Path:
    """train = the labelled clips; val and test as they are (a data.labels_dir for the run)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(labelled)
    for split, table in tables.items():
        rows = table[table["clip_id"].isin(wanted)] if split == "train" else table
        with atomic_path(folder / f"{split}.csv") as tmp:
            rows.to_csv(tmp, index=False)
    return folder


def train_run(plan: Plan, work: Path, labels: Path, seed: int, epochs: int, init_from: Path | None) -> Path:
    """One training run in its own process: its best.pth."""
    args = ["-m", "mmbehave.train", *plan.overrides, f"seed={seed}", f"data.labels_dir={labels}",
            f"training.num_epochs={epochs}", "mlflow.log_model=false", "print_config=false",
            f"hydra.run.dir={work / 'run'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            "mlflow.experiment_name=benchmark_active_learning", f"training.feature_cache_dir={plan.root / 'cache'}"]
    if init_from is not None:
        args.append(f"training.init_from={init_from}")
    run_command(args, cwd=work, timeout=3600)
    return work / "run" / "checkpoints" / "best.pth"


def answers(checkpoint: Path, plan: Plan, split: str, clip_ids: list[str] | None = None,
            without: str | None = None) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(clip ids, {head: probabilities}, {head: targets}) of a split's clips (or of ``clip_ids`` among them), the
    model run on everything, or ``without`` one modality."""
    import torch

    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import make_dataset, make_loader, prepare_data
    from mmbehave.data.settings import DataSettings
    from mmbehave.metrics.epoch_scores import probabilities
    from mmbehave.training.loop import batch_targets, model_inputs

    trained = load_trained_model(checkpoint, "cpu")
    data = DataSettings(root=plan.data_root, preprocess=trained.preprocess)
    prepared = prepare_data(data, trained.modalities, heads=trained.heads, splits=(split,),
                            mel_stats={"mel_mean": trained.mel_mean, "mel_std": trained.mel_std})
    if clip_ids is not None:
        table = prepared.tables[split]
        prepared = dataclasses.replace(prepared, tables={**prepared.tables, split: table[table["clip_id"].isin(clip_ids)]})
    dataset = make_dataset(prepared, split, trained.modalities, trained.classes)
    probs: dict[str, list] = {head.name: [] for head in trained.heads}
    targets: dict[str, list] = {head.name: [] for head in trained.heads}
    with torch.inference_mode():
        for batch in make_loader(dataset, 32):
            inputs = model_inputs(batch, torch.device("cpu"))
            if without is not None:
                inputs = {key: value for key, value in inputs.items() if not key.startswith(without)}
            logits = trained.model(**inputs).logits
            for head in trained.heads:
                probs[head.name].append(probabilities(head, logits[head.name]))
                targets[head.name].append(batch_targets(batch, torch.device("cpu"))[head.name].numpy())
    return (list(dataset.clip_ids), {h: np.concatenate(v) for h, v in probs.items()},
            {h: np.concatenate(v) for h, v in targets.items()})


def margins(probs: dict[str, np.ndarray]) -> np.ndarray:
    """Per clip, the smallest gap between the two most probable classes over the heads."""
    gaps = [np.diff(np.sort(p, axis=1)[:, -2:], axis=1)[:, 0] for p in probs.values()]
    return np.min(np.stack(gaps), axis=0)


def disagreement(fused: dict[str, np.ndarray], alone: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Per clip, how little each modality alone believes the fused answer: sum over heads and modalities of
    1 - p_modality(fused top class)."""
    score = np.zeros(len(next(iter(fused.values()))))
    for head, probs in fused.items():
        top = probs.argmax(1)
        for other in alone:
            score += 1.0 - other[head][np.arange(len(top)), top]
    return score


def choose(strategy: str, checkpoint: Path, plan: Plan, pool: list[str], k: int, seed: int, round_number: int) -> list[str]:
    """The k clips of ``pool`` the strategy has a person review next."""
    if strategy == "random":
        rng = np.random.default_rng(1000 * seed + round_number)
        return sorted(rng.choice(np.array(sorted(pool)), size=min(k, len(pool)), replace=False).tolist())
    ids, probs, _ = answers(checkpoint, plan, "train", pool)
    if strategy == "margin":
        order = np.argsort(margins(probs), kind="stable")
    else:
        alone = [answers(checkpoint, plan, "train", pool, without=modality)[1] for modality in ("audio", "video")]
        order = np.argsort(-disagreement(probs, alone), kind="stable")
    return sorted(ids[i] for i in order[:k])


def test_scores(checkpoint: Path, plan: Plan, train_counts: dict[str, np.ndarray]) -> dict[str, float]:
    """Test macro-F1 (the mean over the single-label heads, as test/macro_f1) and the behaviour head's rare-class
    macro-F1, rare by the whole training split's counts (fixed, whatever a round has labelled)."""
    from mmbehave.metrics.class_scores import single_label_scores

    _, probs, targets = answers(checkpoint, plan, "test")
    summaries = {head: single_label_scores(targets[head], probs[head], train_counts.get(head)).summary
                 for head in probs if probs[head].ndim == 2 and targets[head].ndim == 1}
    return {"test_macro_f1": float(np.mean([s["macro_f1"] for s in summaries.values()])),
            "rare_macro_f1": float(summaries["behavior"]["rare_macro_f1"]) if "behavior" in summaries else float("nan")}


def finished(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def one_round(plan: Plan, work: Path, tables, labelled: list[str], seed: int, epochs: int, init_from: Path | None,
              train_counts) -> dict:
    done = finished(work / "result.json")
    if done is not None:
        return done
    started = time.perf_counter()
    best = train_run(plan, work, write_labels(work / "labels", tables, labelled), seed, epochs, init_from)
    result = {"labels": len(labelled), "labelled": labelled, "checkpoint": str(best),
              **test_scores(best, plan, train_counts), "seconds": time.perf_counter() - started}
    write_text_atomic(work / "result.json", json.dumps(result, indent=2))
    return result


def class_counts(tables: dict[str, pd.DataFrame], heads: tuple[str, ...] = ("species", "behavior")) -> dict[str, np.ndarray]:
    """{head: the whole training split's clips per class}, classes in the model's order (sorted, over every split)."""
    out = {}
    for head in heads:
        names = sorted({name for table in tables.values() for name in table[head]})
        out[head] = np.array([(tables["train"][head] == name).sum() for name in names])
    return out


def active_learning_comparison(cfg: DictConfig, overrides: list[str]) -> dict:
    from mmbehave.data.prepared import make_dataset_files

    bench = cfg.benchmark
    make_dataset_files(cfg.data)                   # the field-like benchmark, generated on first use
    settings = [int(bench.al_start_per_class), int(bench.al_k), int(bench.al_first_epochs), int(bench.al_round_epochs),
                int(bench.al_all_epochs), *overrides]
    # Results are kept per settings (more rounds or seeds extend a measurement; other settings start their own)
    fingerprint = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]
    plan = Plan(Path(str(bench.al_dir)).expanduser().resolve() / f"settings_{fingerprint}",
                Path(str(cfg.data.root)).expanduser().resolve(), overrides, int(bench.al_start_per_class),
                int(bench.al_rounds), int(bench.al_k), int(bench.al_first_epochs), int(bench.al_round_epochs),
                int(bench.al_all_epochs))
    tables = read_tables(plan.data_root)
    seeds = [int(s) for s in bench.al_seeds]
    strategies = [str(s) for s in bench.al_strategies]
    curves: dict[str, list[list[dict]]] = {s: [] for s in strategies}
    reference = []
    counts = class_counts(tables)
    for seed in seeds:
        base = plan.root / f"seed{seed}"
        first = one_round(plan, base / "round0", tables, start_set(tables["train"], plan.start_per_class, seed), seed,
                          plan.first_epochs, None, counts)
        for strategy in strategies:
            chain, last = [first], first
            for number in range(1, plan.rounds + 1):
                work = base / strategy / f"round{number}"
                labelled = (finished(work / "result.json") or {}).get("labelled")
                if labelled is None:
                    pool = sorted(set(tables["train"]["clip_id"]) - set(last["labelled"]))
                    labelled = sorted(last["labelled"] + choose(strategy, Path(last["checkpoint"]), plan, pool,
                                                                plan.k, seed, number))
                last = one_round(plan, work, tables, labelled, seed, plan.round_epochs, Path(last["checkpoint"]), counts)
                chain.append(last)
            curves[strategy].append(chain)
        reference.append(one_round(plan, base / "all_labels", tables, sorted(tables["train"]["clip_id"]), seed,
                                   plan.all_epochs, None, counts))
    return summarise(plan, seeds, curves, reference)


def summarise(plan: Plan, seeds: list[int], curves: dict, reference: list[dict]) -> dict:
    all_score = float(np.mean([r["test_macro_f1"] for r in reference]))
    result: dict = {"seeds": seeds, "start_per_class": plan.start_per_class, "k": plan.k, "rounds": plan.rounds,
                    "all_labels": {"labels": reference[0]["labels"], "test_macro_f1": all_score,
                                   "spread": float(np.ptp([r["test_macro_f1"] for r in reference])),
                                   "rare_macro_f1": float(np.nanmean([r["rare_macro_f1"] for r in reference]))},
                    "strategies": {}}
    for strategy, chains in curves.items():
        labels = [row["labels"] for row in chains[0]]
        f1 = np.array([[row["test_macro_f1"] for row in chain] for chain in chains])
        rare = np.array([[row["rare_macro_f1"] for row in chain] for chain in chains])
        reached = [n for n, value in zip(labels, f1.mean(0)) if value >= SHARE_OF_ALL * all_score]
        result["strategies"][strategy] = {"labels": labels, "f1_mean": f1.mean(0).tolist(), "f1_std": f1.std(0).tolist(),
                                          "rare_mean": np.nanmean(rare, 0).tolist(), "rare_std": np.nanstd(rare, 0).tolist(),
                                          "labels_to_95": reached[0] if reached else None}
    last = {s: row["f1_mean"][-1] for s, row in result["strategies"].items()}
    spread = {s: row["f1_std"][-1] for s, row in result["strategies"].items()}
    if "margin" in last and "random" in last:
        result["margin_beats_random"] = bool(last["margin"] - last["random"] > spread["margin"] + spread["random"])
    # the row's ratio: the best strategy's last-round score against all labels, with that share of the labels
    result["ratio"] = max(last.values()) / all_score if all_score else float("nan")
    result["all"] = 1.0
    result["label_share"] = next(iter(result["strategies"].values()))["labels"][-1] / reference[0]["labels"]
    write_text_atomic(plan.root / "summary.json", json.dumps(result, indent=2))
    result["figure"] = str(draw(result, plan.root / "active_learning.png"))
    return result


def draw(result: dict, path: Path) -> Path:
    from mmbehave.core.figures import plt, save_figure

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for strategy, row in result["strategies"].items():
        for ax, mean, std in ((axes[0], "f1_mean", "f1_std"), (axes[1], "rare_mean", "rare_std")):
            m, s = np.array(row[mean]), np.array(row[std])
            ax.plot(row["labels"], m, marker="o", label=strategy)
            ax.fill_between(row["labels"], m - s, m + s, alpha=0.2)
    everything = result["all_labels"]
    axes[0].axhline(everything["test_macro_f1"], color="k", linestyle="--",
                    label=f"all {everything['labels']} labels")
    axes[0].axhline(SHARE_OF_ALL * everything["test_macro_f1"], color="grey", linestyle=":", label="0.95 of that")
    axes[1].axhline(everything["rare_macro_f1"], color="k", linestyle="--")
    axes[0].set_title("test macro-F1, held-out sites")
    axes[1].set_title("behaviour: rare-class macro-F1")
    for ax in axes:
        ax.set_xlabel("labelled training clips")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Active learning: {result['k']} clips reviewed a round, mean ± std over {len(result['seeds'])} seeds")
    return save_figure(figure, path)
