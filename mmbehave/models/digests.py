"""A module's weights as one digest: what the feature cache keys on and what a checkpoint names a frozen encoder by."""

from __future__ import annotations

import hashlib

from torch import nn


def weights_digest(module: nn.Module) -> str:
    """What the module computes with: a digest of its parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
