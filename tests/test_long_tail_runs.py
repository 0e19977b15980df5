"""The long-tail scores in training: every epoch logs them, ``training.monitor`` can pick best.pth by one, a
name no epoch records fails before any work, and the tables say what they can without training counts.
(``evaluate``'s files and MLflow metrics: tests/test_evaluate.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_SPLITS, compose_config, default_heads, train_here
from mlflow.tracking import MlflowClient

from mmbehave.analysis.metrics_tables import (
    per_class_table,
    summary_metrics,
    summary_table,
)
from mmbehave.analysis.predictions import SplitPredictions
from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.core.errors import ConfigError
from mmbehave.metrics.metric_names import (
    check_metrics_are_recorded,
    epoch_metric_names,
)
from mmbehave.training.fit import objective
from mmbehave.training.monitor import Monitor
from mmbehave.training.run import run_training

MONITOR = "val/behavior_macro_ap"


def test_a_monitor_or_objective_no_epoch_records_is_refused_naming_the_choices():
    check_metrics_are_recorded(compose_config([f"training.monitor={MONITOR}"]))
    check_metrics_are_recorded(compose_config(["hparams_search=mbt_pareto"]))  # [val/macro_f1, fusion/num_params]
    for overrides, key in ((["training.monitor=val/behaviour_macro_ap"], "training.monitor=val/behaviour_macro_ap"),
                           (["optimized_metric=[val/macro_f1,val/nope]"], "optimized_metric=val/nope")):
        with pytest.raises(ConfigError) as info:
            check_metrics_are_recorded(compose_config(overrides))
        assert key in str(info.value) and "val/behavior_rare_macro_f1" in str(info.value)
        assert "\n" not in str(info.value)


def test_a_misspelt_monitor_fails_before_the_data_is_read(tmp_path):
    cfg = compose_config(["training.monitor=val/behavior_map", f"data.root={tmp_path / 'none'}", "data.prepare=null",
                          f"paths.output_dir={tmp_path / 'run'}", "print_config=false"])
    with pytest.raises(ConfigError, match="training.monitor=val/behavior_map is not a metric training records"):
        run_training(cfg)  # a DataError (no dataset there) if the check came after reading the data
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_macro_ap_picks_best_pth(tmp_path, synthetic_root):
    run = tmp_path / "run"
    train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), "training.num_epochs=3",
               "training.limit_val_batches=null", f"training.monitor={MONITOR}")
    latest, best = (read_checkpoint(run / "checkpoints" / f"{name}.pth") for name in ("latest", "best"))
    history = latest["history"]
    assert [set(row) - {"epoch"} for row in history] == [set(epoch_metric_names(default_heads()))] * 3  # the names are the truth
    scores = [row[MONITOR] for row in history]
    assert best["epoch"] == int(np.argmax(scores)) and best["best_metric"] == max(scores)
    assert best["monitor"] == {"metric": MONITOR, "mode": "max"}
    # What a sweep with optimized_metric=val/behavior_macro_ap (its default: ${training.monitor}) gets back.
    assert objective((MONITOR,), Monitor.resumed(MONITOR, "max", None, history)) == max(scores)
    # 40 training clips over 4 species and 5 behaviours, every pair twice.
    assert best["train_class_counts"] == {"species": [10] * 4, "behavior": [8] * 5}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = client.get_metric_history(best["mlflow_run_id"], MONITOR)
    assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(scores)


def test_a_checkpoint_without_training_counts_gets_every_column_but_no_frequent_or_rare():
    targets = np.array([0, 1, 1, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    old = per_class_table(targets, probs, ["a", "b", "c"])
    assert old["train_count"].isna().all() and old["frequent_or_rare"].isna().all()
    assert old["average_precision"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    new = per_class_table(targets, probs, ["a", "b", "c"], train_counts=[30, 5, 1])
    assert new["frequent_or_rare"].tolist() == ["frequent", "rare", "rare"] and new["train_count"].tolist() == [30, 5, 1]
    predictions = SplitPredictions(default_heads(), ["x", "y", "z", "w"], {"species": targets, "behavior": targets},
                                   {"all": {"species": probs, "behavior": probs}})
    without = summary_metrics(predictions, top_k=2)
    assert "species_macro_ap" in without and "species_rare_macro_f1" not in without
    assert "rare_macro_f1" not in summary_table(without, 4, 2, ["species", "behavior"])
