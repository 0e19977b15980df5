"""Trained models in MLflow: logged with their run (models from code, no pickles), registered, and found again.

    log_model(best.pth)  ─► runs:/<run id>/model   (mmbehave/checkpoints/mlflow_pyfunc_model.py + the checkpoint, a
                            signature of the processed inputs, the class lists and preprocessing as metadata)
    register ─► models:/<name>/<version>
    local_checkpoint(models:/... | runs:/...) ─► the checkpoint file, for evaluate / predict / export

``mlflow.log_model`` decides when: ``auto`` logs a single run's best model and leaves a sweep's trials to the
sweep, which logs its best trial's at the end (uploading every trial's weights would fill the artifact store);
``true`` logs every run's, ``false`` none. ``mlflow.registered_model_name`` registers what is logged.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from mmbehave.core.errors import CheckpointError
from mmbehave.core.redact import redact

log = logging.getLogger(__name__)
MODEL_CODE = Path(__file__).with_name("mlflow_pyfunc_model.py")
ARTIFACT_NAME = "model"


def should_log(setting, in_sweep: bool) -> bool:
    mode = str(setting).lower()
    return mode == "true" or (mode == "auto" and not in_sweep)


def signature(trained):
    """Inputs as mmbehave.preprocess writes them (per used modality), outputs one row per clip: the columns
    ``MMBehaveModel.predict`` returns, for this model's heads and classes."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    inputs = [TensorSpec(np.dtype(example.dtype), (-1, *example.shape[1:]), name)
              for name, example in input_example(trained).items()]
    outputs = []
    for head in trained.heads:
        outputs.append(ColSpec("string", head.name))
        if not head.multi:
            outputs.append(ColSpec("double", f"{head.name}_prob"))
    outputs += [ColSpec("double", f"p({head.name}={name})") for head in trained.heads
                for name in trained.classes[head.name]]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(trained) -> dict[str, np.ndarray]:
    """One clip of zeros in the model's input shapes: MLflow stores it, so that ``mlflow models serve`` shows
    what /invocations takes, and checks it against the signature when the model is logged."""
    settings, example = trained.preprocess, {}
    if "video" in trained.modalities:
        example["frames"] = np.zeros((1, settings.num_frames, 3, settings.image_size, settings.image_size), np.uint8)
    if "audio" in trained.modalities:
        time = 1 + int(round(settings.sample_rate * settings.clip_seconds)) // settings.hop_length
        example["mel"] = np.zeros((1, settings.n_mels, time), np.float32)
    return example


def log_model(checkpoint: Path, registered_name: str | None = None) -> str:
    """Log ``checkpoint`` as the active run's MLflow model (``runs:/<id>/model``); register it if asked.
    Returns the run-relative URI."""
    import mlflow

    from mmbehave.checkpoints.trained_model import load_trained_model

    trained = load_trained_model(checkpoint)
    with tempfile.TemporaryDirectory(prefix="mmbehave-model-") as scratch:
        _log_pyfunc(trained, self_contained(checkpoint, trained, Path(scratch)), registered_name)
    uri = f"runs:/{mlflow.active_run().info.run_id}/{ARTIFACT_NAME}"
    log.info("Logged the model to MLflow: %s%s", uri, f" (registered as {registered_name})" if registered_name else "")
    return uri


def self_contained(checkpoint: Path, trained, scratch: Path) -> Path:
    """``checkpoint`` itself, or, where it names frozen encoders instead of holding them, a copy in ``scratch``
    with every weight: the model a run shares must load anywhere."""
    if not trained.checkpoint.get("frozen_weights"):
        return checkpoint
    from mmbehave.checkpoints.files import save_checkpoint

    state = {key: value for key, value in trained.checkpoint.items() if key != "frozen_weights"}
    state["model"] = trained.model.state_dict()
    save_checkpoint(state, scratch / checkpoint.name)
    return scratch / checkpoint.name


def _log_pyfunc(trained, checkpoint: Path, registered_name: str | None) -> None:
    import mlflow
    import torch

    from mmbehave import __version__

    # MLflow notes that a dict input example cannot refine a TypeFromExample hint; the explicit signature holds,
    # so that notice is noise at the end of every training run: only it is dropped, and only while logging.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    pyfunc_log.addFilter(drop_dict_example_notice)
    try:
        mlflow.pyfunc.log_model(
            name=ARTIFACT_NAME, python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint)},
            signature=signature(trained), input_example=input_example(trained),
            # Stated, not inferred (inference loads the model in a subprocess): the serving side needs mmbehave.
            pip_requirements=[f"mmbehave=={__version__}", f"torch=={torch.__version__.split('+')[0]}",
                              f"mlflow=={mlflow.__version__}"],
            metadata={"classes": trained.classes.to_dict(), "modalities": list(trained.modalities),
                      "preprocess": vars(trained.preprocess) | {"frame_window": trained.preprocess.frame_window},
                      "mel_mean": trained.mel_mean, "mel_std": trained.mel_std},
            registered_model_name=registered_name)
    finally:
        pyfunc_log.removeFilter(drop_dict_example_notice)


def drop_dict_example_notice(record: logging.LogRecord) -> bool:
    return "when using TypeFromExample as type hint" not in record.getMessage()


def has_logged_model(client, run_id: str) -> bool:
    """Whether the run logged an MLflow model (MLflow 3 keeps it as a LoggedModel linked to the run's outputs,
    not among the run's own artifacts; ``runs:/<id>/model`` still finds it)."""
    outputs = getattr(client.get_run(run_id), "outputs", None)
    return bool(outputs and outputs.model_outputs)


def local_checkpoint(model_uri: str, tracking_uri: str, into: Path) -> Path:
    """The checkpoint inside an MLflow model (``models:/<name>/<version>``, ``runs:/<id>/model``), downloaded."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into)))
    except (MlflowException, OSError) as error:
        raise CheckpointError(f"model={model_uri}: no such MLflow model in {redact(tracking_uri)} "
                              f"({str(error).splitlines()[0]}); "
                              "check the name and version in the MLflow UI, or set mlflow.tracking_uri.") from error
    found = sorted(folder.rglob("*.pth"))
    if not found:
        raise CheckpointError(f"model={model_uri}: the MLflow model holds no mmbehave checkpoint (*.pth); "
                              "log it with mmbehave.train (mlflow.log_model=true).")
    return found[0]
