"""The modality ablation grid and `python -m mmbehave.report` over its runs (``mmbehave/report.py``)."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import TINY_SPLITS, run_module
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from mmbehave.analysis.run_report import ReportError, compare, load_runs


@pytest.mark.slow
def test_the_modality_ablation_gives_three_runs_and_the_report_compares_them(tmp_path, synthetic_root):
    # debug=fast would send the grid to the `debug` experiment; keep the preset's own name for the report.
    run_module("mmbehave.train", "--multirun", "experiment=modality_ablation", "debug=fast",
               "mlflow.experiment_name=modality_ablation", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
               "training.limit_train_batches=1", "training.limit_val_batches=1", f"hydra.sweep.dir={tmp_path / 'ablation'}",
               tmp_path=tmp_path)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("modality_ablation").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["modalities"] for r in children) == ["audio", "video", "video+audio"]
    assert {(r.data.params["seed"], r.data.params["data.root"]) for r in children} == {("42", str(synthetic_root))}
    assert parents[0].data.params["search.modalities"] == "video+audio,video,audio"
    results = OmegaConf.load(tmp_path / "ablation" / "sweep_results.yaml")
    assert [job.status for job in results.jobs] == ["FINISHED"] * 3 and not results.failures

    out = tmp_path / "report"
    run_module("mmbehave.report", "experiment_name=modality_ablation", f"output_dir={out}",
               f"hydra.run.dir={tmp_path / 'report_run'}", tmp_path=tmp_path)
    table = pd.read_csv(out / "report.csv")
    assert sorted(table["modalities"]) == ["audio", "video", "video+audio"]
    assert list(table["runs"]) == [1, 1, 1]
    f1 = {r.data.params["modalities"]: r.data.metrics["val/macro_f1"] for r in children}
    for row in table.itertuples():
        assert row.mean == pytest.approx(f1[row.modalities])
    assert list(table["mean"]) == sorted(table["mean"], reverse=True)
    markdown = (out / "report.md").read_text()
    assert "| modalities | runs | seeds | mean | spread | min | max |" in markdown
    assert (out / "report.png").stat().st_size > 0 and (out / "runs.csv").is_file()

    with pytest.raises(ReportError, match="experiment_name=mbt: no such MLflow experiment.*modality_ablation"):
        load_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "mbt")
    with pytest.raises(ReportError, match="sweep_id=nope: no such sweep in modality_ablation"):
        load_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "modality_ablation", "nope")


def runs_frame(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """What mlflow.search_runs returns, cut to the columns the report reads."""
    return pd.DataFrame({
        "run_id": [f"run{i}" for i in range(len(rows))], "tags.mlflow.runName": [f"job-{i}" for i in range(len(rows))],
        "params.modalities": [m for m, _, _ in rows], "params.seed": [str(s) for _, s, _ in rows],
        "params.fusion.num_layers": ["2"] * len(rows), "metrics.val/macro_f1": [v for _, _, v in rows]})


def test_the_spread_is_the_standard_deviation_over_seeds():
    runs = runs_frame([("video+audio", 1, 0.6), ("video+audio", 2, 0.8), ("video", 1, 0.5), ("video", 2, 0.5),
                       ("audio", 1, 0.3)])
    table, per_run = compare(runs, "modalities", "val/macro_f1", swept=["fusion.num_layers"])
    assert list(table["modalities"]) == ["video+audio", "video", "audio"]
    both = table.iloc[0]
    assert (both["runs"], both["seeds"], both["mean"]) == (2, 2, pytest.approx(0.7))
    assert both["spread"] == pytest.approx(pd.Series([0.6, 0.8]).std())
    assert pd.isna(table.iloc[2]["spread"])  # one run: no spread to show
    assert list(per_run.columns) == ["run_name", "val/macro_f1", "modalities", "seed", "fusion.num_layers", "run_id"]
    assert per_run["val/macro_f1"].is_monotonic_decreasing


def test_asking_for_what_was_not_logged_names_what_was():
    runs = runs_frame([("video", 1, 0.5)])
    with pytest.raises(ReportError, match="metric=val/nope was not logged.*val/macro_f1"):
        compare(runs, "modalities", "val/nope")
    with pytest.raises(ReportError, match="group_by=optimizer.lr is not a param"):
        compare(runs, "optimizer.lr", "val/macro_f1")


def test_extra_metrics_ride_along_per_run_and_per_group():
    runs = runs_frame([("video+audio", 1, 0.6), ("video+audio", 2, 0.8), ("video", 1, 0.5)])
    runs["metrics.val/behavior_macro_ap"] = [0.4, 0.6, 0.3]
    table, per_run = compare(runs, "modalities", "val/macro_f1", extra_metrics=["val/behavior_macro_ap"])
    assert table["mean val/behavior_macro_ap"].tolist() == pytest.approx([0.5, 0.3])
    assert per_run["val/behavior_macro_ap"].tolist() == [0.6, 0.4, 0.3]  # still in val/macro_f1's order
    with pytest.raises(ReportError, match="extra_metrics=val/behavior_map was not logged.*val/behavior_macro_ap"):
        compare(runs, "modalities", "val/macro_f1", extra_metrics=["val/behavior_map"])
