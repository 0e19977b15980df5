"""Which file holds the model a command is given: ``checkpoint=`` (a path), ``run_id=`` (an MLflow training run's
best checkpoint) or ``model=`` (an MLflow model from the registry or a run).

    checkpoint=<path>            ─► the file itself
    run_id=<MLflow run id>       ─► the run's run_dir tag/checkpoints/best.pth, else its logged MLflow model
    model=models:/<name>/<ver>   ─► the checkpoint inside that MLflow model, downloaded
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mmbehave.core.errors import CheckpointError
from mmbehave.core.redact import redact


def checkpoint_path(checkpoint: str | None, run_id: str | None, tracking_uri: str, model: str | None = None,
                    download_to: Path | None = None) -> Path:
    """The file to load: ``checkpoint`` as given, the best checkpoint of MLflow run ``run_id``, or the one inside
    the MLflow model ``model`` (``models:/<name>/<version>``, ``runs:/<id>/model``), downloaded to ``download_to``.

    A training run records its folder as the ``run_dir`` tag; its best model is ``checkpoints/best.pth`` there,
    and, where that folder is not at hand (another machine), in the run's logged MLflow model.
    """
    if sum(bool(x) for x in (checkpoint, run_id, model)) != 1:
        raise CheckpointError("give exactly one of checkpoint=<path to a .pth>, run_id=<MLflow run id> or "
                              "model=<models:/name/version or runs:/id/model>.")
    if model:
        from mmbehave.checkpoints.mlflow_models import local_checkpoint

        return local_checkpoint(model, tracking_uri, download_to or Path(tempfile.mkdtemp(prefix="mmbehave-model-")))
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"checkpoint={checkpoint}: no such file. Pass the path of a checkpoints/best.pth "
                                  "(or latest.pth) from a training run, or run_id=<MLflow run id>.")
        return path
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mmbehave.tracking.store import check_server_answers

    check_server_answers(tracking_uri)  # an unreachable server is not "no such run"
    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except MlflowException as error:
        raise CheckpointError(f"run_id={run_id}: no such MLflow run in {redact(tracking_uri)}. Check the id in the MLflow UI "
                              "(or set mlflow.tracking_uri / $MLFLOW_TRACKING_URI to the store it was logged to).") from error
    run_dir = run.data.tags.get("run_dir")
    if not run_dir:
        raise CheckpointError(f"run_id={run_id}: the MLflow run has no run_dir tag, so its checkpoints cannot be "
                              "found; pass checkpoint=<path> instead.")
    path = Path(run_dir) / "checkpoints" / "best.pth"
    if not path.is_file():
        from mmbehave.checkpoints.mlflow_models import (
            ARTIFACT_NAME,
            has_logged_model,
            local_checkpoint,
        )

        if has_logged_model(MlflowClient(tracking_uri=tracking_uri), run_id):
            return local_checkpoint(f"runs:/{run_id}/{ARTIFACT_NAME}", tracking_uri,
                                    download_to or Path(tempfile.mkdtemp(prefix="mmbehave-model-")))
        raise CheckpointError(f"run_id={run_id}: its best checkpoint {path} does not exist (moved or deleted?) and the "
                              "run logged no MLflow model; pass checkpoint=<path> instead.")
    return path
