"""The composed config as a tree, printed when a run starts (as lightning-hydra-template users expect).

Each top-level section is a branch with its YAML; the sections a run is built from come first. Passwords in
URIs are redacted, like everywhere mmbehave prints (``mmbehave.core.redact``).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.config_record import ConfigRecord
from mmbehave.core.redact import redact

FIRST = ("data", "video_encoder", "audio_encoder", "fusion", "model", "optimizer", "training", "hardware")


def config_tree(cfg: DictConfig):
    """A ``rich.tree.Tree`` of ``cfg``'s sections (hydra's own and the paths block left out)."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST and k not in ("hydra", "paths")]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else f"{value}\n"
        tree.add(f"[bold]{key}[/bold]").add(Syntax(redact(text).rstrip(), "yaml", theme="ansi_dark", word_wrap=True))
    return tree


def print_config_tree(cfg: DictConfig | ConfigRecord) -> None:
    """The config as a tree on the console (a run prints its record: the values it resolved once)."""
    from rich.console import Console

    if isinstance(cfg, ConfigRecord):
        cfg = OmegaConf.create(cfg.resolved)
    Console(soft_wrap=True).print(config_tree(cfg))
