"""The one way mmbehave turns config into objects.

Hydra 1.4 refuses, or will refuse, config-selected ``_target_``s that trusted code has not allowed. The
allowed targets are mmbehave's own classes and torch's optimizers; a project that adds its own encoder
module lists it in ``$MMBEHAVE_TRUSTED_TARGETS`` (comma-separated, ``mypkg.*`` allows a package).
"""

from __future__ import annotations

import os
from typing import Any

TRUSTED_TARGETS = ("mmbehave.*", "torch.optim.*")


def trusted_targets() -> tuple[str, ...]:
    extra = [t.strip() for t in os.environ.get("MMBEHAVE_TRUSTED_TARGETS", "").split(",") if t.strip()]
    return (*TRUSTED_TARGETS, *extra)


def build(config: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with mmbehave's execution whitelist."""
    from hydra.utils import instantiate

    return instantiate(config, *args, _execution_whitelist_=list(trusted_targets()), **kwargs)
