"""mmbehave: species and behaviour recognition from camera-trap video and audio."""

from omegaconf import OmegaConf

from mmbehave.core.paths import project_root

__version__ = "0.1.0"

# `${project_root:}` in config resolves to the repository root, so paths never depend on the cwd.
# OmegaConf 2.4 renamed register_new_resolver (deprecated) to register_resolver.
_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
if not OmegaConf.has_resolver("project_root"):
    _register("project_root", lambda: str(project_root()))
