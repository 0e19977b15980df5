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
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mmbehave.instantiate import hydra_app

log = logging.getLogger("mmbehave.train")


@hydra_app("train")
def main(cfg: DictConfig) -> float:
    # Imported here so that `--help` and config errors answer before torch and mlflow load.
    from mmbehave.config_checks import ConfigError
    from mmbehave.data.metadata import DataError
    from mmbehave.models.pretrained import PretrainedWeightsError
    from mmbehave.training.run import run_training

    try:
        return run_training(cfg)
    except (ConfigError, DataError, PretrainedWeightsError) as error:
        # A user's mistake, not a bug: one clear message instead of a traceback. In a sweep the error
        # propagates so that the sweeper records this trial as failed and goes on.
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
