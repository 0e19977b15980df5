"""Hydra multiruns as Optuna studies: one MLflow parent per multirun, resumable studies, failed trials,
parallel trials (``mmbehave/sweeps/``, ``conf/hparams_search/``, ``conf/hydra/launcher/parallel.yaml``).

The CLI tests run the real ``python -m mmbehave.train --multirun`` on the session's tiny synthetic dataset,
with a temp SQLite Optuna storage and a temp SQLite MLflow store.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from helpers import TINY_SPLITS, compose_config, compose_with_hydra, run_module
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from mmbehave.core.redact import redact
from mmbehave.sweeps.settings import parallel_torch_threads, search_space


def multirun(tmp_path: Path, synthetic_root: Path, *overrides: str, sweep: str = "multirun"):
    """`python -m mmbehave.train --multirun` with one-batch epochs; the sweep folder in tmp_path/<sweep>."""
    return run_module("mmbehave.train", "--multirun", "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
                      "training.limit_train_batches=1", "training.limit_val_batches=1",
                      f"hydra.sweep.dir={tmp_path / sweep}", *overrides, tmp_path=tmp_path)


def sweep_runs(tmp_path: Path, experiment: str) -> tuple[MlflowClient, list, dict[str, list]]:
    """(client, parent runs oldest first, {parent run id: its child runs})."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
                for p in parents}
    return client, parents, children


SWEPT = ("fusion.num_layers", "fusion.num_heads", "fusion.num_bottlenecks", "video_encoder.freeze_backbone",
         "audio_encoder.freeze_backbone", "optimizer.lr")


@pytest.mark.slow
def test_an_optuna_sweep_is_one_parent_run_survives_failed_trials_and_resumes_in_parallel(tmp_path, synthetic_root):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # A trial made to fail: 8 heads do not divide a hidden size of 36. The study's first trial is enqueued
    # with 8 heads, so the sweep meets a failure first; any later trial that draws 8 fails the same way.
    optuna.create_study(study_name="mbt", storage=storage, direction="maximize").enqueue_trial({"fusion.num_heads": 8})
    command = ("hparams_search=mbt", "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}",
               "fusion.hidden_dim=36")
    multirun(tmp_path, synthetic_root, *command, sweep="first")
    # The same command again continues the study; this time two trials at a time, in joblib worker processes.
    multirun(tmp_path, synthetic_root, *command, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", sweep="second")

    trials = optuna.load_study(study_name="mbt", storage=storage).trials
    assert len(trials) == 8
    for trial in trials:
        assert (trial.state == optuna.trial.TrialState.FAIL) == (trial.params["fusion.num_heads"] == 8), trial
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in trials[1:4]), "the sweep stopped at the failure"
    first_params = [t.params for t in trials[:4]]
    assert not any(t.params in first_params for t in trials[4:]), "the resumed study replayed its first trials"

    client, parents, children = sweep_runs(tmp_path, "debug")  # debug=fast keeps smoke runs out of `mbt`
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    for parent, numbers in zip(parents, ([0, 1, 2, 3], [4, 5, 6, 7])):
        kids = children[parent.info.run_id]
        assert sorted(int(k.data.tags["optuna_trial"]) for k in kids) == numbers  # also from the workers
        for kid in kids:
            trial = trials[int(kid.data.tags["optuna_trial"])]
            assert kid.data.tags["sweep_id"] == parent.data.tags["sweep_id"]
            params = kid.data.params
            assert float(params["optimizer.lr"]) == trial.params["optimizer.lr"]
            for key in SWEPT[:3]:  # numbers stay numbers: "4", not "4.0" or "'4'"
                assert params[key] == str(trial.params[key])
            assert params["modalities"] == "video+audio"
            if trial.state == optuna.trial.TrialState.FAIL:
                assert kid.info.status == "FAILED"
                assert "not divisible by fusion.num_heads=8" in kid.data.tags["failure_reason"]
            else:
                assert kid.info.status == "FINISHED"
                assert kid.data.metrics["val/macro_f1"] == pytest.approx(trial.value)
        assert parent.data.tags["optuna_study"] == "mbt" and parent.data.params["search.fusion.num_heads"]

    # The second sweep really ran trials side by side, each with its share of the cores.
    assert parents[1].data.tags["launcher"] == "JoblibLauncher"
    finished = [k for k in children[parents[1].info.run_id] if k.info.status == "FINISHED"]
    spans = sorted((k.info.start_time, k.info.end_time) for k in children[parents[1].info.run_id])
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), "the trials ran one after another"
    cores = len(os.sched_getaffinity(0))
    assert {k.data.tags["torch_threads"] for k in finished} == {str(max(1, cores // 2))}

    # The best trial is the same in the study and on the latest parent run, which links to its child run.
    study = optuna.load_study(study_name="mbt", storage=storage)
    latest = client.get_run(parents[1].info.run_id)
    assert latest.data.tags["best_trial"] == str(study.best_trial.number)
    assert latest.data.metrics["best/val/macro_f1"] == pytest.approx(study.best_value)
    assert latest.data.params["best.fusion.num_layers"] == str(study.best_params["fusion.num_layers"])
    best_run = client.get_run(latest.data.tags["best_run_id"])
    assert best_run.data.tags["optuna_trial"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(latest.info.run_id)}
    assert {"optimization_results.yaml", "optimization_history.png", "parallel_coordinate.png"} <= artifacts

    results = OmegaConf.load(tmp_path / "first" / "optimization_results.yaml")
    assert results.trials_this_sweep == [0, 1, 2, 3]
    failed = [t.number for t in trials[:4] if t.state == optuna.trial.TrialState.FAIL]
    assert [f.trial for f in results.failures] == failed
    assert "not divisible" in results.failures[0].reason and results.failures[0].mlflow_run_id


def test_the_study_storage_defaults_to_the_project_root_and_follows_the_environment(monkeypatch):
    from mmbehave.core.paths import project_root

    monkeypatch.delenv("MMBEHAVE_OPTUNA_STORAGE", raising=False)
    assert compose_with_hydra("hparams_search=mbt").hydra.sweeper.storage == f"sqlite:///{project_root()}/optuna.db"
    monkeypatch.setenv("MMBEHAVE_OPTUNA_STORAGE", "postgresql://mmb@db.lab/optuna")
    assert compose_with_hydra("hparams_search=mbt").hydra.sweeper.storage == "postgresql://mmb@db.lab/optuna"


def test_search_space_lists_the_swept_axes_from_the_preset_and_the_command_line():
    cfg = compose_with_hydra("hparams_search=mbt")
    cfg.hydra.overrides.task.append("seed=1,2")  # as `--multirun hparams_search=mbt seed=1,2` records it
    space = search_space(cfg)
    assert space["optimizer.lr"] == "tag(log, interval(1e-5, 1e-2))"
    assert space["seed"] == "1,2"
    assert "hparams_search" not in space


def test_parallel_jobs_share_the_cores_and_the_default_launcher_leaves_torch_alone():
    cores = len(os.sched_getaffinity(0))
    joblib = compose_with_hydra("hydra/launcher=parallel", "hydra.launcher.n_jobs=2")
    assert parallel_torch_threads(joblib) == max(1, cores // 2)
    assert parallel_torch_threads(compose_with_hydra()) is None


def test_storage_urls_are_logged_without_their_password():
    assert redact("postgresql://mmb:s3cret@db.lab:5432/optuna") == "postgresql://mmb:***@db.lab:5432/optuna"
    assert redact("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"


def test_the_presets_compose_into_an_optuna_study_and_a_modality_grid():
    mbt = compose_with_hydra("hparams_search=mbt_pareto")
    assert mbt.hydra.sweeper.study_name == "mbt_pareto"
    assert list(mbt.hydra.sweeper.direction) == ["maximize", "minimize"]
    assert list(mbt.optimized_metric) == ["val/macro_f1", "fusion/num_params"]
    assert mbt.hydra.sweeper.max_failure_rate > 0
    for name, video, audio in (("video+audio", True, True), ("video", True, False), ("audio", False, True)):
        cfg = compose_config([f"modalities={name}"])
        assert ("absent" not in cfg.video_encoder._target_, "absent" not in cfg.audio_encoder._target_) == (video, audio)


def test_a_two_objective_study_reports_its_pareto_front_and_plots(tmp_path):
    from optuna.distributions import CategoricalDistribution

    from mmbehave.sweeps.results import optuna_results, pareto_table, write_study_plots

    study = optuna.create_study(directions=["maximize", "minimize"])
    layers = CategoricalDistribution([1, 2, 3])
    for number, (f1, cost) in enumerate([(0.5, 100.0), (0.7, 300.0), (0.4, 200.0)]):  # trial 2 is dominated
        study.add_trial(optuna.trial.create_trial(params={"fusion.num_layers": number + 1},
                                                  distributions={"fusion.num_layers": layers}, values=[f1, cost]))
    study.add_trial(optuna.trial.create_trial(params={"fusion.num_layers": 1}, distributions={"fusion.num_layers": layers},
                                              state=optuna.trial.TrialState.FAIL))
    objectives = ["val/macro_f1", "fusion/num_params"]
    results = optuna_results(study, "sqlite:///unused.db", [0, 1, 2, 3], objectives, {3: "TrainingDiverged: NaN"},
                             run_id_of=lambda number: f"run{number}")
    assert [p["trial"] for p in results["pareto_front"]] == [0, 1]
    assert results["objectives"] == {"val/macro_f1": "maximize", "fusion/num_params": "minimize"}
    assert results["failures"] == [{"trial": 3, "state": "FAIL", "params": {"fusion.num_layers": 1},
                                    "reason": "TrainingDiverged: NaN", "mlflow_run_id": "run3"}]
    table = pareto_table(results["pareto_front"], objectives)
    assert table.splitlines()[0] == "| trial | val/macro_f1 | fusion/num_params | fusion.num_layers |"
    assert "| 1 | 0.7 | 300 | 2 |" in table
    written = {p.name for p in write_study_plots(study, tmp_path, objectives)}
    assert {"pareto_front.png", "optimization_history.png"} <= written


def test_sweeps_sharing_a_study_ask_enqueued_trials_first_and_leave_none_waiting(tmp_path):
    from mmbehave.sweeps.async_trials import ask_marked

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first, second = (optuna.create_study(study_name="shared", storage=storage, load_if_exists=True) for _ in range(2))
    first.enqueue_trial({}, user_attrs={"from": "user"})
    asked = [ask_marked(study, {"sweep_pid": pid}) for study, pid in [(first, 1), (second, 2), (first, 1), (second, 2)]]
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert [t.number for t in asked] == [0, 1, 2, 3]
    assert trials[0].user_attrs == {"from": "user"}  # the user's enqueued trial first; the sweep marks it next
    assert [t.user_attrs for t in trials[1:]] == [{"sweep_pid": 2}, {"sweep_pid": 1}, {"sweep_pid": 2}]
    assert all(t.state == optuna.trial.TrialState.RUNNING for t in trials)  # none left WAITING for another sweep


@pytest.mark.slow
def test_asynchronous_trials_do_not_wait_for_the_slowest_one(tmp_path, synthetic_root):
    # Two workers; the study's first trial is long (40 epochs), the three after it short (1 epoch). In batches of
    # two, trials 2 and 3 would start only when the long trial ends; asynchronously the free worker runs them all.
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="mbt", storage=storage, direction="maximize")
    for epochs in (40, 1, 1, 1):
        study.enqueue_trial({"training.num_epochs": epochs})
    multirun(tmp_path, synthetic_root, "hparams_search=mbt", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
             f"hydra.sweeper.storage={storage}", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
             "pruning.pruner=none", "training.num_epochs=choice(1,40)", "fusion.num_layers=2", "fusion.num_heads=2",
             "fusion.num_bottlenecks=1", "optimizer.lr=0.001")

    trials = optuna.load_study(study_name="mbt", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert [t.params["training.num_epochs"] for t in trials] == [40, 1, 1, 1]
    _, parents, children = sweep_runs(tmp_path, "debug")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    runs = {int(k.data.tags["optuna_trial"]): k for k in children[parents[0].info.run_id]}
    assert sorted(runs) == [0, 1, 2, 3] and all(k.info.status == "FINISHED" for k in runs.values())
    for number in (1, 2, 3):
        assert trials[number].value == pytest.approx(runs[number].data.metrics["val/macro_f1"])
    # Optuna's clock, not the runs' (the best run's end moves when the sweep logs its model at the end).
    long_trial = trials[0]
    assert all(t.datetime_complete < long_trial.datetime_complete for t in trials[1:]), \
        "a short trial waited for the long one (a batch barrier)"
    assert trials[3].datetime_start >= trials[2].datetime_complete  # one worker ran the short ones in turn
