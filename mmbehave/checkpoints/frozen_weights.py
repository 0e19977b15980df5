"""Frozen pretrained encoders named in a checkpoint instead of copied into it (``training.frozen_in_checkpoints``).

Every trial of a fusion sweep over a frozen VideoMAE-base writes best.pth and latest.pth, and copying the 86 M
weights nobody trains into each file (about 390 MB) was most of a cached trial's time and ~40 GB for 50 trials.
With ``reference``, a checkpoint keeps what training changed, and for each frozen encoder that was loaded from
pretrained weights, a digest of those weights; its config (already in the file) says where they come from.

    save:  model state ─► minus <encoder>.* of each referenced encoder ─► "frozen_weights": {encoder: digest}
    load:  build that encoder with its pretrained loading on, from local files only (never the network)
           ─► digest equal to the stored one? else refuse ─► load the rest of the state into the model

The MLflow model a run or sweep logs always holds every weight (``mlflow_models.log_model``), so the model a
lab shares is self-contained; only the trial folders' files need the pretrained weights at hand.
"""

from __future__ import annotations

from torch import nn

from mmbehave.core.errors import CheckpointError
from mmbehave.models.digests import weights_digest

ENCODERS = ("video_encoder", "audio_encoder")


def referable_encoders(model: nn.Module, model_cfg) -> list[str]:
    """The encoders a checkpoint may name instead of copying: frozen, and built from pretrained weights (not a
    stand-in), so that building them again from the config gives the same weights."""
    names = []
    for name in ENCODERS:
        encoder, node = getattr(model, name, None), model_cfg.get(name)
        if encoder is None or node is None or not node.get("pretrained") or getattr(encoder, "fallback_reason", None):
            continue
        parameters = list(encoder.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            names.append(name)
    return names


def frozen_digests(model: nn.Module, model_cfg, mode: str) -> dict[str, str]:
    """{encoder: weights digest} of the encoders this run's checkpoints name rather than copy."""
    if mode != "reference":
        return {}
    return {name: weights_digest(getattr(model, name)) for name in referable_encoders(model, model_cfg)}


def stored_state(model: nn.Module, digests: dict[str, str]) -> dict:
    """The model's state dict without the named encoders' entries."""
    prefixes = tuple(f"{name}." for name in digests)
    return {key: value for key, value in model.state_dict().items() if not prefixes or not key.startswith(prefixes)}


def weights_source(node) -> str:
    """Where an encoder's pretrained weights come from, for messages."""
    return str(node.get("model_name") or node.get("weights_path") or "the torch hub cache (ResNet18 ImageNet)")


def named_encoders(checkpoint: dict, where: str) -> dict[str, str]:
    """The checkpoint's ``frozen_weights`` ({encoder: digest}; empty for a file that holds every weight)."""
    named = checkpoint.get("frozen_weights") or {}
    if not isinstance(named, dict) or not all(k in ENCODERS and isinstance(v, str) for k, v in named.items()):
        raise CheckpointError(f"{where}: its frozen_weights entry is malformed (want {{encoder: digest}}).")
    return named


def keep_pretrained_loading(model_cfg, digests: dict[str, str], where: str) -> None:
    """Turn pretrained loading back on for the named encoders (``load_trained_model`` switched it off
    everywhere), never falling back to a stand-in. The caller builds inside ``hub_offline``: local files only."""
    for name in digests:
        node = model_cfg.get(name)
        if node is None:
            raise CheckpointError(f"{where}: its frozen_weights name {name}, which its model config does not have.")
        node.pretrained = True
        if "on_load_failure" in node:
            node.on_load_failure = "raise"


def not_loadable(where: str, digests: dict[str, str], model_cfg, reason: str) -> CheckpointError:
    """The error for named encoders whose weights could not be loaded from their source on this machine."""
    sources = ", ".join(weights_source(model_cfg[name]) for name in digests)
    return CheckpointError(f"{where}: its frozen encoders ({', '.join(digests)}) are named, not stored "
                           f"(training.frozen_in_checkpoints=reference), and could not be loaded from {sources} on "
                           f"this machine ({reason[:200]}). Copy those weights here, or use the run's MLflow model "
                           "(model=runs:/<run id>/model), which holds every weight.")


def check_same_weights(model: nn.Module, digests: dict[str, str], model_cfg, where: str) -> None:
    """CheckpointError unless each named encoder, as built now, has the weights the checkpoint was trained with."""
    for name, digest in digests.items():
        if weights_digest(getattr(model, name)) != digest:
            raise CheckpointError(
                f"{where}: its {name} is not stored in the file but named (training.frozen_in_checkpoints=reference), "
                f"and the weights at {weights_source(model_cfg[name])} are not the ones it was trained with. Put "
                "those weights back there, or use the run's MLflow model (model=runs:/<run id>/model), which holds "
                "them all.")


def load_named_state(model: nn.Module, state: dict, digests: dict[str, str], where: str) -> None:
    """Load ``state`` into ``model``: strict, except for the named encoders' entries, which must be all missing
    (no names: strict)."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise CheckpointError(f"{where}: its weights do not fit the model its config describes ({error}).") from error
    prefixes = tuple(f"{name}." for name in digests)
    missing = [key for key in missing if not (prefixes and key.startswith(prefixes))]
    if missing or unexpected:
        raise CheckpointError(f"{where}: its weights do not fit the model its config describes (missing: "
                              f"{missing[:3]}, unexpected: {unexpected[:3]}).")
