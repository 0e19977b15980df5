"""What a checkpoint may rebuild: model components, and nothing else.

A checkpoint stores the config its model was built from, and evaluate, predict and export rebuild the model
from it through ``_target_``. A file from elsewhere must not be able to name any other callable (a helper that
writes files, say), so every ``_target_`` in a checkpoint's model config must be one of these classes and
builders, or one a user registers on purpose:

    export MMBEHAVE_MODEL_COMPONENTS=mylab.models.MyFusion,mylab.models.build_my_encoder
    # or, in Python before loading: mmbehave.models.components.register_model_component("mylab.models.MyFusion")

Configs the user types on the command line are governed by the wider ``$MMBEHAVE_TRUSTED_TARGETS``
(``mmbehave.core.instantiate``): these rules are only for configs read from files.
"""

from __future__ import annotations

from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmbehave.core.instantiate import allow_target, listed_in_environment

MODEL_COMPONENTS = frozenset({
    "mmbehave.models.classifier.MultiModalClassifier",
    "mmbehave.models.video_encoders.build_videomae_encoder",
    "mmbehave.models.cnn3d.CNN3DEncoder",
    "mmbehave.models.audio_encoders.build_resnet18_audio_encoder",
    "mmbehave.models.small_audio_cnn.SmallAudioCNN",
    "mmbehave.models.mbt.MBTFusion",
    "mmbehave.models.concat_fusion.ConcatFusion",
    "mmbehave.models.ablation.absent_modality",
})
ENV_VAR = "MMBEHAVE_MODEL_COMPONENTS"
_registered: set[str] = set()


def register_model_component(target: str) -> None:
    """Allow checkpoints to rebuild ``target`` (a dotted path to your own encoder, fusion or classifier)."""
    _registered.add(target)
    allow_target(target)


def model_components() -> frozenset[str]:
    return MODEL_COMPONENTS | _registered | set(listed_in_environment(ENV_VAR))


def targets_in(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every (``key._target_``, value) in a config tree, lists included."""
    for path, key, value in special_keys_in(node, prefix):
        if key == "_target_":
            yield path, value


def special_keys_in(node: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a Hydra special key (``_target_``, ``_partial_``, ``_args_``, ...) in a tree."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}"
            if isinstance(key, str) and key.startswith("_") and key.endswith("_") and len(key) > 2:
                yield path, key, value
            if key != "_target_":
                yield from special_keys_in(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from special_keys_in(value, f"{prefix}[{index}]")


def foreign_targets(model_cfg: Any, prefix: str = "model") -> list[tuple[str, Any]]:
    """The ``_target_``s of ``model_cfg`` that are not model components: [(key, target)]."""
    allowed = model_components()
    return [(key, target) for key, target in targets_in(model_cfg, prefix)
            if not isinstance(target, str) or target not in allowed]


def malformed_keys(model_cfg: Any, prefix: str = "model") -> list[str]:
    """Why a stored model config cannot be built safely, one reason per bad special key: a ``_target_`` that is
    not a dotted name, ``_partial_`` that is not true/false or sits on the model itself (which must be built,
    not left half-made), and the other Hydra keys (``_args_``, ``_recursive_``, ``_convert_``), which a model
    config never needs."""
    problems = []
    for path, key, value in special_keys_in(model_cfg, prefix):
        if key == "_target_" and not isinstance(value, str):
            problems.append(f"{path} is a {type(value).__name__}, not a dotted name")
        elif key == "_partial_" and not isinstance(value, bool):
            problems.append(f"{path}={value!r} is not true or false")
        elif key == "_partial_" and path == f"{prefix}._partial_":
            problems.append(f"{path} would leave the model itself unbuilt")
        elif key not in ("_target_", "_partial_"):
            problems.append(f"{path} is not a key a model config uses")
    return problems
