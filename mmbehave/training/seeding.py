"""Seeding and RNG state, so that a run (and a resumed run) repeats exactly on CPU."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch starts from its own seed: shuffling, augmentation and dropout of epoch e are then the same
    whether the run went straight through or was resumed before e."""
    return seed * 1000 + epoch


def rng_states() -> dict:
    """RNG states in a form ``torch.load(weights_only=True)`` accepts (tensors, lists, ints)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    python = states["python"]
    random.setstate((python[-1], tuple(python[:-1]), None))
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
