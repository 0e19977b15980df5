"""The benchmark script measures the configured model (numbers go to the README, not into assertions)."""

from __future__ import annotations

import pytest
from helpers import compose_config

from mmbehave.perf.benchmark import run_benchmark


def test_benchmark_reports_speed_memory_and_sizes_for_the_configured_model():
    cfg = compose_config(["benchmark.steps=1", "benchmark.warmup_steps=0", "benchmark.batch_size=2",
                          "audio_encoder=none", "fusion.hidden_dim=32", "benchmark.measure=[model]"],
                         config_name="benchmark")
    result = run_benchmark(cfg)["model"]
    assert result["modalities"] == "video"
    assert result["batch_size"] == 2
    assert result["train_clips_per_s"] > 0 and result["infer_ms_per_clip"] > 0
    assert 0 < result["params_fusion"] < result["params_total"]
    assert result["peak_host_memory_mib"] > 0


def test_the_schedule_row_measures_the_workers_busy_share_from_optunas_clock():
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from mmbehave.perf.sweep_schedule import busy_fraction, trial_lengths

    t0 = datetime(2026, 1, 1)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    # Two workers for 10 s: one runs a 10 s trial, the other a 5 s trial and then idles.
    trials = [SimpleNamespace(datetime_start=at(0), datetime_complete=at(10)),
              SimpleNamespace(datetime_start=at(0), datetime_complete=at(5)),
              SimpleNamespace(datetime_start=at(3), datetime_complete=None)]  # failed or running: not counted
    row = busy_fraction(trials, workers=2)
    assert row == {"wall_s": 10.0, "busy": 0.75, "trials_per_hour": 720.0, "trials": 2}
    assert trial_lengths(6, 6) == [6, 1, 1, 6, 1, 1]


@pytest.mark.slow
def test_the_loop_row_times_the_training_phase_of_the_real_command(tmp_path, synthetic_root):
    """The loop row's "real" number is what `python -m mmbehave.train` logs as time/train_s (its fastest epoch
    after the first), from a run in its own process: the command users run, not a copy of its loop; the epoch
    row's is its logged time/epoch_s, the whole epoch."""
    from helpers import TINY_SPLITS
    from mlflow.tracking import MlflowClient

    from mmbehave.perf.measurements import real_loop

    overrides = ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split()]
    row = real_loop(overrides, tmp_path, epochs=3, batches=2, batch_size=4)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("benchmark").experiment_id])
    train_s = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "time/train_s"), key=lambda m: m.step)]
    assert len(train_s) == 3 and run.data.params["training.num_epochs"] == "3"
    assert row["epoch_s"] == min(train_s[1:])
    assert abs(row["clips_per_s"] - 2 * 4 / min(train_s[1:])) < 1e-9
    # the whole epoch too: training, validation over the whole split, the saves and the log line
    history = {key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, f"time/{key}"),
                                             key=lambda m: m.step)] for key in ("epoch_s", "val_s", "save_s")}
    assert len(history["epoch_s"]) == 3 and row["whole_epoch_s"] == min(history["epoch_s"][1:])
    for epoch in range(3):  # the parts are inside the whole
        assert history["epoch_s"][epoch] >= train_s[epoch] + history["val_s"][epoch] + history["save_s"][epoch]
    assert abs(row["whole_clips_per_s"] - 2 * 4 / row["whole_epoch_s"]) < 1e-9


def test_time_to_a_good_value_counts_only_finished_trials_from_the_first_start():
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from mmbehave.perf.time_to_good import seconds_to

    t0 = datetime(2026, 1, 1)

    def trial(start, end, value, state="COMPLETE"):
        return SimpleNamespace(datetime_start=t0 + timedelta(seconds=start), value=value, state=SimpleNamespace(name=state),
                               datetime_complete=None if end is None else t0 + timedelta(seconds=end))

    trials = [trial(0, 50, 0.6), trial(5, 30, None, "PRUNED"), trial(30, 80, 0.8), trial(50, 70, 0.9),
              trial(70, None, None, "RUNNING")]
    assert seconds_to(trials, 0.75) == 70  # the 0.9 trial completed first, although started later
    assert seconds_to(trials, 0.85) == 70 and seconds_to(trials, 0.95) is None
    assert seconds_to(trials, None) == 80  # the whole sweep


def test_learning_curves_draw_each_trials_epochs_in_trial_order_and_mark_the_pruned(tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from mmbehave.perf.time_to_good import learning_curves, trial_curves

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("benchmark")
    for trial, values, pruned in ((1, [0.2, 0.3], True), (0, [0.4, 0.6, 0.8], False)):
        run = client.create_run(experiment, tags={"optuna_trial": str(trial), **({"pruned": "true"} if pruned else {})})
        client.log_batch(run.info.run_id, metrics=[Metric("val/macro_f1", v, 0, step) for step, v in enumerate(values)])
    client.create_run(experiment)  # the sweep's parent: no trial, no curve

    assert trial_curves(tmp_path / "mlflow.db") == [(0, [1, 2, 3], pytest.approx([0.4, 0.6, 0.8]), False),
                                                     (1, [1, 2], pytest.approx([0.2, 0.3]), True)]
    figure = learning_curves({"async": tmp_path / "mlflow.db"}, 0.8, tmp_path / "out" / "curves.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
