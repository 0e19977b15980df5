"""A trained model as files for CPU inference: fp32, and dynamic int8 (``torch.ao``: every nn.Linear's weights
to int8, activations quantised per batch on the fly; convolutions stay fp32).

Both files are plain dicts of tensors and strings, like a training checkpoint, so ``torch.load(path,
weights_only=True)`` reads them and no code runs on load. A quantised module cannot be rebuilt from its state
dict alone, so ``trained_model.load_trained_model`` rebuilds the fp32 model from the stored config, quantises
it the same way and then loads the int8 state.
"""

from __future__ import annotations

from mmbehave.checkpoints.trained_model import DYNAMIC_INT8

# Keys of a training checkpoint that inference needs; optimizer, scheduler and RNG states are left behind.
EXPORTED_KEYS = ("classes", "data_stats", "preprocess", "modalities", "config", "mlflow_run_id", "epoch",
                 "train_class_counts", "thresholds", "review_round")


def export_state(trained, model) -> dict:
    """The export file's contents: ``model``'s state and what inference needs of the source checkpoint."""
    quantized = any("_packed_params" in key for key in model.state_dict())
    return {
        "model": model.state_dict(),
        **{key: trained.checkpoint[key] for key in EXPORTED_KEYS if key in trained.checkpoint},
        "quantization": dict(DYNAMIC_INT8) if quantized else None,
        "source_checkpoint": str(trained.path),
    }
