"""`python -m mmbehave.evaluate` on the session's tiny trained model, and the analysis pieces it is built from.

The run by run id is the command's smoke run through the real CLI (a subprocess), and so is its one-line error
for a missing checkpoint; the other evaluations call ``run_evaluation`` in this process on the composed config."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import default_heads, run_here, run_module
from mlflow.tracking import MlflowClient

from mmbehave.analysis.attention_maps import pick_clips, query_attention
from mmbehave.analysis.metrics_tables import top_k_accuracy
from mmbehave.analysis.modality_contributions import contribution_table
from mmbehave.analysis.predictions import SplitPredictions
from mmbehave.checkpoints.sources import checkpoint_path
from mmbehave.core.errors import CheckpointError
from mmbehave.data.metadata import ClassLists

SPECIES = ["badger", "red_deer", "red_fox", "wild_boar"]
BEHAVIORS = ["alarm", "calling", "resting", "running", "walking"]


def assert_png(path, min_pixels: int = 200):
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= min_pixels and image.shape[1] >= min_pixels, f"{path} is {image.shape}"
    assert image.std() > 0.01, f"{path} is blank"


@pytest.mark.slow
def test_evaluate_by_run_id_writes_reports_and_logs_them_to_the_training_run(tmp_path, trained_run):
    out = tmp_path / "evaluation"
    result = run_module("mmbehave.evaluate", f"run_id={trained_run.run_id}", f"output_dir={out}",
                        f"hydra.run.dir={tmp_path / 'run'}", "attention.num_clips=2", tmp_path=tmp_path,
                        env=trained_run.env)
    assert "test/macro_f1 = " in result.stdout and "red_deer" in result.stdout  # the printed tables
    assert "average_precision" in result.stdout and "rare_macro_f1" in result.stdout

    report = json.loads((out / "metrics.json").read_text())
    assert report["checkpoint"] == str(trained_run.checkpoint)  # the run's best.pth
    assert report["num_clips"] == 20
    metrics = report["metrics"]
    assert metrics["macro_f1"] == pytest.approx((metrics["species_macro_f1"] + metrics["behavior_macro_f1"]) / 2)
    assert 0.0 <= metrics["species_acc"] <= metrics["species_top3_acc"] <= 1.0

    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class[per_class["head"] == "species"]["class"].tolist() == SPECIES
    assert per_class.groupby("head")["support"].sum().to_dict() == {"behavior": 20, "species": 20}
    assert list(per_class.columns) == ["head", "class", "precision", "recall", "f1", "support", "average_precision",
                                       "train_count", "frequent_or_rare"]
    # The long tail: the checkpoint's training counts (40 clips, every class as frequent: all tail), macro AP
    # over the per-class APs, micro-F1 = accuracy for one label per clip; an undefined score is null, not NaN.
    assert per_class.groupby("head")["train_count"].sum().to_dict() == {"behavior": 40, "species": 40}
    assert set(per_class["frequent_or_rare"]) == {"rare"}
    for head in ("species", "behavior"):
        rows = per_class[per_class["head"] == head]
        assert metrics[f"{head}_macro_ap"] == pytest.approx(rows["average_precision"].mean(), abs=1e-5)
        assert metrics[f"{head}_micro_f1"] == pytest.approx(metrics[f"{head}_acc"])
        assert metrics[f"{head}_rare_macro_f1"] == pytest.approx(metrics[f"{head}_macro_f1"])
        assert metrics[f"{head}_frequent_macro_f1"] is None
    assert {"macro_precision", "macro_recall", "micro_f1", "macro_ap", "frequent_macro_f1", "rare_macro_f1"} <= set(
        pd.read_csv(out / "summary.csv").columns)
    confusion = pd.read_csv(out / "confusion_behavior.csv", index_col=0)
    assert confusion.index.tolist() == confusion.columns.tolist() == BEHAVIORS
    assert confusion.to_numpy().sum() == 20

    contributions = pd.read_csv(out / "modality_contributions.csv")
    macro = contributions[(contributions["head"] == "species") & (contributions["metric"] == "macro-F1")].iloc[0]
    assert macro["all"] == pytest.approx(metrics["species_macro_f1"], abs=1e-6)  # the CSV keeps 6 digits
    assert macro["drop_without_audio"] == pytest.approx(macro["all"] - macro["without_audio"], abs=2e-6)  # CSV: 6 digits
    assert "without_video/macro_f1" in metrics

    figures = sorted((out / "attention").glob("*.png"))
    assert len(figures) == 2
    for png in [*figures, out / "confusion_species.png", out / "confusion_behavior.png", out / "modality_contributions.png"]:
        assert_png(png)
        assert png.stat().st_size < 300_000

    client = MlflowClient(trained_run.tracking_uri)
    run = client.get_run(trained_run.run_id)
    assert run.data.metrics["test/macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert run.data.metrics["test/behavior_macro_ap"] == pytest.approx(metrics["behavior_macro_ap"])
    assert run.data.metrics["test/species_rare_macro_f1"] == pytest.approx(metrics["species_rare_macro_f1"])
    assert "test/without_audio/behavior_macro_f1" in run.data.metrics
    assert run.info.status == "FINISHED"  # logging results does not re-open the run
    logged = {a.path for a in client.list_artifacts(trained_run.run_id, "evaluation/test")}
    assert {"evaluation/test/metrics.json", "evaluation/test/confusion_species.png", "evaluation/test/attention"} <= logged


@pytest.mark.slow
def test_a_missing_checkpoint_is_a_one_line_error_naming_it(tmp_path):
    result = run_module("mmbehave.evaluate", f"checkpoint={tmp_path / 'nope.pth'}", f"hydra.run.dir={tmp_path / 'run'}",
                        tmp_path=tmp_path, check=False)
    assert result.returncode == 2
    assert f"checkpoint={tmp_path / 'nope.pth'}: no such file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_unknown_run_id_names_the_run_and_the_store(tmp_path, trained_run):
    with pytest.raises(CheckpointError, match=f"run_id=0123abc: no such MLflow run in {trained_run.tracking_uri}"):
        checkpoint_path(None, "0123abc", trained_run.tracking_uri)
    with pytest.raises(CheckpointError, match="exactly one of"):
        checkpoint_path(str(trained_run.checkpoint), trained_run.run_id, trained_run.tracking_uri)


def test_top_k_accuracy_counts_the_true_class_among_the_k_most_probable():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
    targets = np.array([1, 2, 1])
    assert top_k_accuracy(targets, probs, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(targets, probs, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(targets, probs, 10) == 1.0  # k capped at the class count


def test_contribution_table_reports_the_drop_per_head_and_class():
    one_hot = np.eye(2)
    truth = np.array([0, 1, 0, 1])
    right, wrong = one_hot[truth], one_hot[1 - truth]
    predictions = SplitPredictions(
        heads=default_heads(), clip_ids=list("abcd"), targets={"species": truth, "behavior": truth},
        probs={"all": {"species": right, "behavior": right},
               "without_video": {"species": wrong, "behavior": right},   # species needs the video
               "without_audio": {"species": right, "behavior": right}},  # nothing needs the audio
    )
    classes = ClassLists({"species": ["a", "b"], "behavior": ["x", "y"]})
    table = contribution_table(predictions, classes).set_index(["head", "metric"])
    assert table.loc[("species", "accuracy"), "drop_without_video"] == 1.0
    assert table.loc[("species", "b"), "drop_without_video"] == 1.0  # per-class F1 1 -> 0
    assert table.loc[("behavior", "macro-F1"), "drop_without_video"] == 0.0
    assert (table["drop_without_audio"] == 0.0).all()


def test_query_attention_reads_the_cls_row_and_the_bottleneck_rows():
    # L = 1 CLS + 3 tokens + 2 bottlenecks; one head.
    attention = torch.zeros(1, 1, 6, 6)
    attention[0, 0, 0] = torch.tensor([0.1, 0.6, 0.2, 0.0, 0.1, 0.0])
    attention[0, 0, 4] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    attention[0, 0, 5] = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert query_attention(attention, 3, 2, "cls")[0].tolist() == pytest.approx([0.6, 0.2, 0.0])
    assert query_attention(attention, 3, 2, "bottlenecks")[0].tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_pick_clips_shows_different_classes_first():
    assert pick_clips([2, 2, 0, 1, 0], 3) == [2, 3, 0]
    assert pick_clips([0, 0], 5) == [0, 1]


def test_evaluate_scores_clips_without_audio_apart(tmp_path, trained_run, synthetic_missing_audio_root):
    out = tmp_path / "report"
    result = run_here("evaluate", f"checkpoint={trained_run.checkpoint}", f"data_root={synthetic_missing_audio_root}",
                      f"output_dir={out}", "attention.num_clips=0", "modality_contributions=false", "mlflow.log=false",
                      tmp_path=tmp_path, env=trained_run.env)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["clips_without_audio/num_clips"] == 5 and metrics["clips_with_audio/num_clips"] == 15
    assert 0 <= metrics["clips_without_audio/macro_f1"] <= 1
    assert "test/clips_without_audio/macro_f1 = " in result.output
