"""The benchmark's ``predict`` and ``predict_memory`` rows: a random-weights checkpoint of the configured
model predicting field-like clips (against the decoder's bound), and memory over an archive's size."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.instantiate import build
from mmbehave.domain.config_checks import configured_modalities
from mmbehave.domain.heads import heads_from_config


def random_checkpoint(cfg: DictConfig, path: Path) -> Path:
    """The configured model with random weights as a checkpoint file (speed only: no training, no hub)."""
    from omegaconf import OmegaConf

    from mmbehave.checkpoints.files import save_checkpoint
    from mmbehave.data.clip_inputs import PreprocessSettings
    from mmbehave.data.prepared import preprocess_values

    heads = heads_from_config(cfg)
    sizes = {h.name: int(cfg.benchmark.num_species if h.name == "species" else cfg.benchmark.num_behaviors)
             for h in heads}
    model = build(cfg.model, num_classes=sizes)
    save_checkpoint({"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True),
                     "classes": {head: [f"{head}_{i}" for i in range(size)] for head, size in sizes.items()},
                     "preprocess": preprocess_values(PreprocessSettings.from_config(cfg.data)),
                     "data_stats": {"mel_mean": 0.0, "mel_std": 1.0}, "modalities": list(configured_modalities(cfg))},
                    path)
    return path


def predict_rows(cfg: DictConfig, work: Path, wanted: set[str]) -> dict:
    """Predicting field clips against its bound (``perf/predict_speed.py``), and memory over an archive's size."""
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.core.paths import project_root
    from mmbehave.perf.predict_speed import (
        FieldClips,
        field_clips,
        predict_memory,
        predict_speed,
    )
    from mmbehave.predicting.clip_loading import usable_cores

    bench = cfg.benchmark
    checkpoint = random_checkpoint(cfg, work / "model.pth")
    clips = field_clips(project_root() / "data" / "benchmark_clips", FieldClips(count=int(bench.predict_clips)))
    results = {}
    if "predict" in wanted:
        trained = load_trained_model(checkpoint)
        results["predict"] = predict_speed(trained, clips, int(bench.predict_batch_size), usable_cores())
    if "predict_memory" in wanted:
        tiny = sorted((Path(cfg.data.root) / "raw" / "videos").glob("*.mp4"))
        if not tiny:
            from mmbehave.data.prepared import make_dataset_files

            make_dataset_files(cfg.data)
            tiny = sorted((Path(cfg.data.root) / "raw" / "videos").glob("*.mp4"))
        memory = predict_memory(checkpoint, tiny, tuple(int(n) for n in bench.memory_clips), work)
        results["predict_memory"] = {**memory, "ratio": memory["growth"]}
    return results
