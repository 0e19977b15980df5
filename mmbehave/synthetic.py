"""Generate the built-in benchmark ahead of training (training with ``data=synthetic`` does it on first use).

    python -m mmbehave.synthetic                           # data/synthetic/seed_0 (the default data.root)
    python -m mmbehave.synthetic data.seed=1 data.root=/tmp/synth1
    python -m mmbehave.synthetic unlabeled=1000            # and 1000 clips no split holds, for distill.unlabeled=

Takes the same ``data.*`` keys as training. What the clips contain: ``mmbehave/data/synthetic/scenes.py``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("synthetic")
def main(cfg: DictConfig) -> None:
    from mmbehave.data.synthetic.generator import (
        clip_plan,
        ensure_synthetic_dataset,
        generator_settings,
    )

    root = ensure_synthetic_dataset(cfg.data, num_workers=int(cfg.num_workers))
    counts = {split: len(table) for split, table in clip_plan(generator_settings(cfg.data)).items()}
    print(f"synthetic benchmark ready in {root}: {counts}")
    if int(cfg.unlabeled) > 0:
        from pathlib import Path

        from mmbehave.data.synthetic.generator import write_unlabeled_pool

        folder = Path(str(cfg.unlabeled_dir))
        write_unlabeled_pool(folder, cfg.data, int(cfg.unlabeled), num_workers=int(cfg.num_workers))
        print(f"{cfg.unlabeled} unlabelled clips in {folder} (python -m mmbehave.distill distill.unlabeled={folder})")


if __name__ == "__main__":
    main()
