"""Models: encoders turn each modality into tokens, a fusion merges them, one head per ``model.heads`` entry
classifies (species and behaviour by default; any number, single- or multi-label).

    video ─► video_encoders.VideoMAEEncoder | cnn3d.CNN3DEncoder ─┐
                                                                  ├─► mbt.MBTFusion | concat_fusion.ConcatFusion
    audio ─► audio_encoders.ResNetAudioEncoder ───────────────────┘           │
                                         classifier.MultiModalClassifier: heads[<name>] for each model.heads entry

`pretrained` holds the weight-loading policy (local first, network only after a quick probe);
`ablation.absent_modality` is the `none` option of an encoder group. Config groups
`conf/{video_encoder,audio_encoder,fusion,model}/` target the builders here.

Only the light modules are imported eagerly; the encoder modules pull in transformers / torchvision
and load on first use (`mmbehave.models.VideoMAEEncoder` works, it just costs the import then).
"""

from __future__ import annotations

import importlib
from typing import Any

from mmbehave.models.ablation import absent_modality
from mmbehave.models.classifier import ClassifierOutput, MultiModalClassifier
from mmbehave.models.concat_fusion import ConcatFusion
from mmbehave.models.mbt import FusionOutput, MBTFusion
from mmbehave.models.pretrained import PretrainedWeightsError

_LAZY = {
    "CNN3DEncoder": "mmbehave.models.cnn3d",
    "VideoMAEEncoder": "mmbehave.models.video_encoders",
    "build_videomae_encoder": "mmbehave.models.video_encoders",
    "ResNetAudioEncoder": "mmbehave.models.audio_encoders",
    "build_resnet18_audio_encoder": "mmbehave.models.audio_encoders",
}

__all__ = [
    "ClassifierOutput",
    "ConcatFusion",
    "FusionOutput",
    "MBTFusion",
    "MultiModalClassifier",
    "PretrainedWeightsError",
    "absent_modality",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmbehave.models' has no attribute {name!r}")
