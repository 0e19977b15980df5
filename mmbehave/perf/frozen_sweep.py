"""What a sweep over frozen backbones costs next to one training: the case the feature cache is for.

Both sides run the real command on the same subset of the built-in benchmark, at VideoMAE-base's own input size
(16 frames of 224 px: ~180 GFLOPs a clip) with VideoMAE-base- and ResNet18-shaped encoders (random weights saved
as a lab keeps pretrained ones: speed only, no hub), both frozen:

    one training     python -m mmbehave.train, feature cache off: the encoders run on every clip of every epoch
    the sweep        python -m mmbehave.train hparams_search=mbt_frozen, n trials of the same epochs, its feature
                     cache built inside the timed run; trials name the frozen encoders in their checkpoints

From the sweep's MLflow children: per trial, the fusion's compute (its epochs' train + validation time) and the
rest (the fixed part: building the model, reading the cache, checkpoints, MLflow), so the note can say where
the time goes when the ratio misses its target.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.perf.measurements import train_command, trial_times
from mmbehave.perf.processes import run_command


def base_sized_weights(folder: Path, num_frames: int, image_size: int) -> list[str]:
    """VideoMAE-base- and ResNet18-shaped random weights in ``folder``, and the overrides that load and freeze them."""
    import torch
    from torchvision.models import resnet18
    from transformers import VideoMAEConfig, VideoMAEModel

    VideoMAEModel(VideoMAEConfig(num_frames=num_frames, image_size=image_size)).save_pretrained(folder / "videomae")
    torch.save(resnet18(weights=None).state_dict(), folder / "resnet18.pth")
    return ["video_encoder=videomae_base", f"video_encoder.model_name={folder / 'videomae'}",
            f"audio_encoder.weights_path={folder / 'resnet18.pth'}"]


def frozen_sweep_against_one_training(cfg: DictConfig, overrides: list[str], work: Path) -> dict:
    bench = cfg.benchmark
    frames, size = int(bench.frozen_num_frames), int(bench.frozen_image_size)
    weights = base_sized_weights(work / "weights", frames, size)
    subset = [f"data.root={work / 'data'}", f"data.num_frames={frames}", f"data.image_size={size}",
              f"data.clips_per_split.train={bench.frozen_clips[0]}", f"data.clips_per_split.val={bench.frozen_clips[1]}",
              f"data.clips_per_split.test={bench.frozen_clips[1]}", f"training.num_epochs={bench.frozen_epochs}"]
    frozen = ["video_encoder.pretrained=true", "video_encoder.freeze_backbone=true", "video_encoder.on_load_failure=raise",
              "audio_encoder.pretrained=true", "audio_encoder.freeze_backbone=true", "audio_encoder.on_load_failure=raise",
              "data.augment.time_masks=0", "data.augment.freq_masks=0"]
    # The data are generated and preprocessed once, outside both timings (a lab's clips are already there).
    run_command(["-m", "mmbehave.synthetic", *[o for o in subset if o.startswith("data.")]], cwd=work)
    single = run_command(train_command(overrides, work / "single", *weights, *frozen, *subset,
                                       "training.feature_cache=false"), cwd=work / "single")
    folder = work / "sweep"
    sweep = run_command(train_command(
        overrides, folder, "hparams_search=mbt_frozen", *weights, *subset, f"hydra.sweeper.n_trials={bench.frozen_trials}",
        "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage=sqlite:///{folder / 'optuna.db'}",
        f"training.feature_cache_dir={folder / 'cache'}"), cwd=folder)
    cache_s = sum(float(s) for s in re.findall(r"Cached \w+ features of .*?, ([0-9.]+) s\)", sweep.stdout + sweep.stderr))
    trials = trial_times(f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'optuna.db'}")
    return {"single_s": single.seconds, "sweep_s": sweep.seconds, "ratio": sweep.seconds / single.seconds,
            "trials": int(bench.frozen_trials), "epochs": int(bench.frozen_epochs), "clips": list(bench.frozen_clips),
            "input": f"{frames}x{size}px", "cache_build_s": cache_s, **trials}
