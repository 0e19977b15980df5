"""The CUDA path (hardware=cuda): bf16 autocast, and fp16 with its GradScaler, for a few real training steps.

CI and the development machines have no GPU; these run wherever torch sees one (``run_training`` in this
process on the composed config).
"""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_SPLITS, train_here

from mmbehave.checkpoints.files import read_checkpoint

pytestmark = [pytest.mark.cuda, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; this machine has none")]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_few_cuda_steps_train_and_checkpoint(tmp_path, synthetic_root, precision):
    train_here(tmp_path, "debug=fast", "hardware=cuda", f"hardware.precision={precision}", "hardware.num_workers=0",
               f"data.root={synthetic_root}", *TINY_SPLITS.split())
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pth")
    assert torch.isfinite(torch.tensor(checkpoint["history"][-1]["train/loss"]))
    assert (checkpoint["scaler"] is not None) == (precision == "fp16")  # the GradScaler ran and was saved
