"""mmbehave: species and behaviour recognition from camera-trap video and audio."""

from omegaconf import OmegaConf

from mmbehave.core.paths import project_root

__version__ = "0.1.0"

# `${project_root:}` in config resolves to the repository root, so paths never depend on the cwd.
# OmegaConf 2.4 renamed register_new_resolver (deprecated) to register_resolver.
_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
if not OmegaConf.has_resolver("project_root"):
    _register("project_root", lambda: str(project_root()))


def _synthetic_name(seed, missing_audio=0.0, split_by=None) -> str:
    """The built-in benchmark's folder: one per data seed, and per share of clips without audio when there is one;
    the field-like dataset's (``split_by`` given) one per split as well: ``field_<split_by>_seed_<n>...``."""
    share = float(missing_audio or 0.0)
    prefix = f"field_{split_by}_" if split_by else ""
    return f"{prefix}seed_{seed}" + (f"_missing_audio_{round(share * 100):g}" if share else "")


def _synthetic_group_by(split_by):
    """``data.group_by`` of the field-like dataset: null (the usual site / camera / event columns are checked
    to keep to one split) for ``site``; [] (nothing checked) for ``random``, whose leak is the point."""
    return [] if str(split_by) == "random" else None


# `${synthetic_name:${data.seed},${data.missing_audio}}`: data/synthetic/<this> (conf/data/synthetic.yaml);
# conf/data/synthetic_field.yaml adds `,${data.split_by}`.
if not OmegaConf.has_resolver("synthetic_name"):
    _register("synthetic_name", _synthetic_name)
# `${synthetic_group_by:${data.split_by}}` (conf/data/synthetic_field.yaml).
if not OmegaConf.has_resolver("synthetic_group_by"):
    _register("synthetic_group_by", _synthetic_group_by)


def _cv_folds(folder) -> str:
    from mmbehave.domain.folds import fold_sweep  # imported late: resolvers register before any submodule loads

    return fold_sweep(str(folder))


if not OmegaConf.has_resolver("cv_folds"):
    _register("cv_folds", _cv_folds)


def _pretrained_file(folder, name) -> str:
    """``${pretrained_file:${pretrained_from},video}`` (conf/encoder_init/): a file of a pretrain run's output, or
    one line saying which key is missing (null would otherwise become a folder named "None")."""
    if folder in (None, "", "None"):
        from mmbehave.core.errors import ConfigError

        raise ConfigError("encoder_init=pretrained | frozen needs pretrained_from=<the pretrained/ folder a "
                          "`python -m mmbehave.pretrain` run wrote>.")
    return f"{folder}/{name}"


if not OmegaConf.has_resolver("pretrained_file"):
    _register("pretrained_file", _pretrained_file)
