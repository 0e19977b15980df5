"""mmbehave: species and behaviour recognition from camera-trap video and audio."""

from omegaconf import OmegaConf

from mmbehave.core.paths import project_root

__version__ = "0.1.0"

# `${project_root:}` in config resolves to the repository root, so paths never depend on the cwd.
# OmegaConf 2.4 renamed register_new_resolver (deprecated) to register_resolver.
_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
if not OmegaConf.has_resolver("project_root"):
    _register("project_root", lambda: str(project_root()))


def _synthetic_name(seed, missing_audio=0.0) -> str:
    """The built-in benchmark's folder: one per data seed, and per share of clips without audio when there is one."""
    share = float(missing_audio or 0.0)
    return f"seed_{seed}" + (f"_missing_audio_{round(share * 100):g}" if share else "")


# `${synthetic_name:${data.seed},${data.missing_audio}}`: data/synthetic/<this> (conf/data/synthetic.yaml).
if not OmegaConf.has_resolver("synthetic_name"):
    _register("synthetic_name", _synthetic_name)
