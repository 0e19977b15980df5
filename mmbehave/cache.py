"""Build the feature caches of frozen encoders ahead of a sweep, and say how big they are.

    python -m mmbehave.cache hparams_search=mbt_frozen video_encoder.model_name=/models/videomae-base
    python -m mmbehave.cache video_encoder.pretrained=true video_encoder.freeze_backbone=true ... splits=[train,val,test]

Takes the training command's overrides: the model and data they describe decide the cache keys, so every run
and trial with the same encoders, weights, preprocessing and clips reads what this wrote
(``mmbehave/training/feature_cache.py``). A cache already there is reused, not rebuilt.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("cache")
def main(cfg: DictConfig) -> None:
    import torch

    from mmbehave.core.instantiate import build
    from mmbehave.data.prepared import make_dataset_files, prepare_data
    from mmbehave.models.precision_plan import plan_and_apply
    from mmbehave.training.feature_cache import prepare_feature_caches
    from mmbehave.training.seeding import seed_everything
    from mmbehave.training.settings import read_run_settings

    settings = read_run_settings(cfg)
    seed_everything(settings.seed)
    splits = tuple(cfg.splits)
    make_dataset_files(cfg.data)
    prepared = prepare_data(settings.data, settings.modalities, splits=splits, heads=settings.heads)
    device = torch.device(settings.hardware.device)
    model = build(cfg.model, num_classes=prepared.classes.sizes()).to(device)
    hardware = settings.hardware  # the plan training makes, so the keys are the ones its runs look for
    precision = plan_and_apply(model, hardware.precision, device, settings.data.preprocess, settings.modalities,
                               hardware.bf16_min_gflop)
    print(precision.line())
    cached, info = prepare_feature_caches(cfg.model, model, prepared, modalities=settings.modalities, splits=splits,
                                          device=device, mode=settings.training.feature_cache,
                                          batch_size=settings.training.batch_size,
                                          augmentation=settings.data.augment,
                                          cache_dir=Path(settings.training.feature_cache_dir), precision=precision)
    print("| modality | split | clips | tokens x width | encoded in | size | file |")
    print("|---|---|---|---|---|---|---|")
    total = 0
    for split, by_modality in cached.items():
        for modality, tokens in by_modality.items():
            total += tokens.size_bytes
            encoded_in = precision.parts[f"{modality}_encoder"]
            print(f"| {modality} | {split} | {len(tokens.clip_ids)} | {tokens.tokens.shape[1]} x "
                  f"{tokens.tokens.shape[2]} | {encoded_in} | {tokens.size_bytes / 2**20:.1f} MiB | {tokens.path} |")
    for modality, value in info.items():
        if value.startswith("off"):
            print(f"| {modality} | - | - | - | - | - | not cached: {value[5:]} |")
    print(f"\n{total / 2**20:.1f} MiB in {cfg.training.feature_cache_dir}")


if __name__ == "__main__":
    main()
