"""Train a species + behaviour model and log the run to MLflow.

    python -m mmbehave.train                                  # defaults: synthetic data, tiny model, CPU
    python -m mmbehave.train fusion.num_layers=4              # any config key
    python -m mmbehave.train audio_encoder=none               # video-only ablation
    python -m mmbehave.train experiment=seed_scale data.root=/data/clips   # the seed's setup, on a GPU
    python -m mmbehave.train resume=outputs/<date>/<time>/checkpoints/latest.pth
    python -m mmbehave.train --multirun hparams_search=mbt                # Optuna study (conf/hparams_search/)
    python -m mmbehave.train --multirun experiment=modality_ablation      # video+audio, video, audio

Returns (to Hydra sweepers) the best value of ``optimized_metric`` over epochs (a list of values for a
multi-objective study). A multirun is one MLflow parent run with a child per job (mmbehave/sweeps/).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from mmbehave.instantiate import hydra_app
from mmbehave.user_errors import exit_on_user_error

log = logging.getLogger("mmbehave.train")


@hydra_app("train")
def main(cfg: DictConfig) -> float:
    # Imported here so that `--help` and config errors answer before torch and mlflow load.
    from mmbehave.training.run import run_training

    return exit_on_user_error(lambda: run_training(cfg))


if __name__ == "__main__":
    main()
