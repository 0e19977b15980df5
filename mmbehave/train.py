"""Train a species + behaviour model and log the run to MLflow.

    python -m mmbehave.train                                  # defaults: synthetic data, tiny model, CPU
    python -m mmbehave.train fusion.num_layers=4              # any config key
    python -m mmbehave.train audio_encoder=none               # video-only ablation
    python -m mmbehave.train experiment=seed_scale data.root=/data/clips   # the seed's setup, on a GPU
    python -m mmbehave.train resume=outputs/<date>/<time>/checkpoints/latest.pth

Returns (to Hydra sweepers) the best value of ``optimized_metric`` over epochs.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mmbehave.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float:
    # Imported here so that `--help` and config errors answer before torch and mlflow load.
    from mmbehave.training.run import run_training

    return run_training(cfg)


if __name__ == "__main__":
    main()
