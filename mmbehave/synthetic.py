"""Generate the built-in benchmark ahead of training (training with ``data=synthetic`` does it on first use).

    python -m mmbehave.synthetic                           # data/synthetic/seed_0 (the default data.root)
    python -m mmbehave.synthetic data.seed=1 data.root=/tmp/synth1

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


if __name__ == "__main__":
    main()
