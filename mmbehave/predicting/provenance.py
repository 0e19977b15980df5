"""Which model made a table: columns ``model_run_id`` and ``model_sha256`` on every row.

Prediction tables outlive the model folder they came from and get merged across seasons; a column (rather
than a header comment, which pandas and spreadsheets drop) keeps each row tied to the exact model file.
"""

from __future__ import annotations

from mmbehave.core.digests import file_sha256

HASH_DIGITS = 12
__all__ = ["HASH_DIGITS", "file_sha256", "model_provenance"]


def model_provenance(trained) -> dict[str, str]:
    """The training run's MLflow id (empty when it was not tracked) and the first 12 hex of the file's SHA-256."""
    return {"model_run_id": trained.mlflow_run_id or "", "model_sha256": file_sha256(trained.path)[:HASH_DIGITS]}
