"""The run's config as the run records it: resolved once when the settings are read, so that what is logged
(MLflow params, config.yaml, the checkpoint's stored config), printed and compared on resume is one snapshot,
and no function past the settings needs the raw Hydra config to write its record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.redact import redact


@dataclass(frozen=True)
class ConfigRecord:
    resolved: dict[str, Any] = field(default_factory=dict)  # every value resolved: plain dicts, lists, scalars

    @classmethod
    def of(cls, cfg: DictConfig) -> ConfigRecord:
        return cls(OmegaConf.to_container(cfg, resolve=True))

    def yaml(self) -> str:
        """The config as YAML, passwords redacted: what config.yaml and a checkpoint keep."""
        return redact(OmegaConf.to_yaml(OmegaConf.create(self.resolved)))

    def section(self, key: str) -> dict[str, Any]:
        """One top-level section (``model``, ``training``, ...) as a plain dict ({} when absent)."""
        value = self.resolved.get(key)
        return value if isinstance(value, dict) else {}
