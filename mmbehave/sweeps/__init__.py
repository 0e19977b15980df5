"""Hydra multiruns as studies: Optuna searches and ablation grids, grouped under one MLflow parent run.

    python -m mmbehave.train --multirun hparams_search=mbt                  # Optuna study, resumable
    python -m mmbehave.train --multirun experiment=modality_ablation        # video+audio, video, audio

    multirun start ──► SweepCallback.on_multirun_start: parent MLflow run, stale trials failed, sampler seed
        │               offset by the study's trial count (a resumed study never repeats its first trials)
        ├─ Optuna asks a trial ──► record_trial: job number ↔ trial number, trial ↔ parent run
        ├─ each job (launching process, or a joblib worker) ──► on_job_start: SweepJob (tags, threads)
        │      └─ run_training: child run tagged mlflow.parentRunId, sweep_id, optuna_trial
        └─ multirun end ──► on_multirun_end: results file with failures, best trial, plots → parent run

Modules: ``callback`` (the Hydra callback and Optuna hook), ``study`` (Optuna storage and trials), ``runs``
(MLflow runs a sweep closes itself), ``results`` (results file, Pareto front, plots). What a job knows about
its sweep lives one layer down, in ``mmbehave.sweeps.job``, because the training run reads it.
"""
