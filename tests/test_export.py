"""`python -m mmbehave.export`: fp32 and int8 files that load safely and predict, and the side-by-side report."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import compose_config, run_module
from mlflow.tracking import MlflowClient

from mmbehave.analysis.export_comparison import run_export
from mmbehave.checkpoints.export import export_state
from mmbehave.checkpoints.files import save_checkpoint
from mmbehave.checkpoints.trained_model import (
    DYNAMIC_INT8,
    CheckpointError,
    load_trained_model,
    quantize_dynamic_int8,
)

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning", "ignore:TypedStorage:UserWarning")
def test_export_writes_safe_fp32_and_int8_models_and_compares_them(tmp_path, trained_run):
    out = tmp_path / "export"
    result = run_module("mmbehave.export", f"checkpoint={trained_run.checkpoint}", f"output_dir={out}",
                        "latency.clips=4", "latency.warmup=1", f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path,
                        env=trained_run.env)
    assert "int8" in result.stdout and "latency" in result.stdout

    report = json.loads((out / "export_report.json").read_text())
    fp32, int8 = report["models"]
    assert (fp32["model"], int8["model"]) == ("fp32", "int8")
    # best.pth already holds no optimizer state, so the fp32 export is its size; int8 Linear weights are smaller.
    assert int8["size_mb"] < fp32["size_mb"] <= report["source_size_mb"] * 1.01
    for row in (fp32, int8):
        assert row["latency_ms"] > 0 and 0.0 <= row["test_macro_f1"] <= 1.0
    assert int8["agreement_with_fp32"] >= 0.8  # int8 rounding may flip a few near-ties, not most predictions

    # Both files are plain data: the safe loader reads them, and the int8 one carries int8 weights.
    raw = torch.load(out / "model_int8.pth", weights_only=True)
    assert raw["quantization"] == DYNAMIC_INT8 and "optimizer" not in raw
    packed = [v for k, v in raw["model"].items() if k.endswith("_packed_params._packed_params")]
    assert packed and all(weight.dtype == torch.qint8 for weight, _ in packed)
    assert torch.load(out / "model_fp32.pth", weights_only=True)["quantization"] is None

    # Rebuilt from the file alone, the int8 model scores what the report says.
    trained = load_trained_model(out / "model_int8.pth")
    assert trained.quantization == DYNAMIC_INT8
    assert type(trained.model.heads["species"][1]).__module__.startswith("torch.ao.nn.quantized")

    run = MlflowClient(trained_run.tracking_uri).get_run(trained_run.run_id)
    assert run.data.metrics["export/int8_test_macro_f1"] == pytest.approx(int8["test_macro_f1"])
    assert run.data.metrics["export/fp32_size_mb"] == pytest.approx(fp32["size_mb"])


def test_an_int8_file_cannot_be_exported_again_and_a_foreign_file_is_named(tmp_path, trained_run):
    trained = load_trained_model(trained_run.checkpoint)
    int8_path = tmp_path / "model_int8.pth"
    save_checkpoint(export_state(trained, quantize_dynamic_int8(trained.model)), int8_path)
    cfg = compose_config([f"checkpoint={int8_path}", f"output_dir={tmp_path / 'again'}"], config_name="export")
    with pytest.raises(CheckpointError, match="already an int8 export"):
        run_export(cfg)

    foreign = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match=f"{foreign}: not an mmbehave checkpoint"):
        load_trained_model(foreign)
