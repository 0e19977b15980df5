"""Which model made a table: columns ``model_run_id`` and ``model_sha256`` on every row.

Prediction tables outlive the model folder they came from and get merged across seasons; a column (rather
than a header comment, which pandas and spreadsheets drop) keeps each row tied to the exact model file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_DIGITS = 12
CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_provenance(trained) -> dict[str, str]:
    """The training run's MLflow id (empty when it was not tracked) and the first 12 hex of the file's SHA-256."""
    return {"model_run_id": trained.mlflow_run_id or "", "model_sha256": file_sha256(trained.path)[:HASH_DIGITS]}
