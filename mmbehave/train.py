"""Train a species + behaviour model and log the run to MLflow.

    python -m mmbehave.train                                  # defaults: synthetic data, tiny model, CPU
    python -m mmbehave.train fusion.num_layers=4              # any config key
    python -m mmbehave.train audio_encoder=none               # video-only ablation
    python -m mmbehave.train experiment=guide data.root=/data/clips       # the original guide's setup, on a GPU
    python -m mmbehave.train debug=overfit                                # can the model learn? (loss -> 0)
    python -m mmbehave.train resume=outputs/<date>/<time>/checkpoints/latest.pth
    python -m mmbehave.train hparams_search=mbt                           # Optuna study (starts a sweep by itself)
    python -m mmbehave.train --multirun experiment=modality_ablation      # video+audio, video, audio

Returns (to Hydra sweepers) the best value of ``optimized_metric`` over epochs (a list of values for a
multi-objective study). A multirun is one MLflow parent run with a child per job (mmbehave/sweeps/).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from mmbehave.core.cli import command
from mmbehave.sweeps.cv_folds import settle_folds

log = logging.getLogger("mmbehave.train")


@command("train", before_hydra=settle_folds)  # experiment=site_cv's folds, checked or made
def main(cfg: DictConfig) -> float | list[float]:
    # Imported here so that `--help` answers before torch and mlflow load.
    from mmbehave.analysis.evaluate_at_end import evaluate_at_end
    from mmbehave.perf.first_step import FirstStepClock
    from mmbehave.sweeps.fold_resume import adopted_value
    from mmbehave.sweeps.hooks import sweep_hooks
    from mmbehave.training.hooks import HookChain
    from mmbehave.training.run import run_training

    adopted = adopted_value(cfg.mlflow.get("tracking_uri"))  # a killed cross-validation's fold that finished: not trained again
    if adopted is not None:
        return adopted
    return run_training(cfg, hooks=HookChain(sweep_hooks(), FirstStepClock(), evaluate_at_end(cfg)))


if __name__ == "__main__":
    main()
