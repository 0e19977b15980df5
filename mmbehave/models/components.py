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

import os
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

MODEL_COMPONENTS = frozenset({
    "mmbehave.models.classifier.MultiModalClassifier",
    "mmbehave.models.video_encoders.build_videomae_encoder",
    "mmbehave.models.cnn3d.CNN3DEncoder",
    "mmbehave.models.audio_encoders.build_resnet18_audio_encoder",
    "mmbehave.models.mbt.MBTFusion",
    "mmbehave.models.concat_fusion.ConcatFusion",
    "mmbehave.models.ablation.absent_modality",
})
ENV_VAR = "MMBEHAVE_MODEL_COMPONENTS"
_registered: set[str] = set()


def register_model_component(target: str) -> None:
    """Allow checkpoints to rebuild ``target`` (a dotted path to your own encoder, fusion or classifier)."""
    _registered.add(target)


def model_components() -> frozenset[str]:
    extra = {t.strip() for t in os.environ.get(ENV_VAR, "").split(",") if t.strip()}
    return MODEL_COMPONENTS | _registered | extra


def targets_in(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every (``key._target_``, value) in a config tree, lists included."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}"
            if key == "_target_":
                yield path, value
            else:
                yield from targets_in(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from targets_in(value, f"{prefix}[{index}]")


def foreign_targets(model_cfg: Any, prefix: str = "model") -> list[tuple[str, Any]]:
    """The ``_target_``s of ``model_cfg`` that are not model components: [(key, target)]."""
    allowed = model_components()
    return [(key, target) for key, target in targets_in(model_cfg, prefix) if target not in allowed]
