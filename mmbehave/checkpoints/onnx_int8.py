"""Static int8 of an ONNX export (``model_int8.onnx``): onnxruntime's ``quantize_static`` in QDQ form, weights int8
per output channel, activations int8 at ranges measured once on training clips (calibration), so that the
convolutions run in int8 too, which torch's dynamic int8 of the .pth export leaves fp32.

    model.onnx ─► quant_pre_process (shape inference, graph fusions: fewer, larger ops to quantise)
               ─► quantize_static(Conv, MatMul and Gemm only; MinMax ranges over ``calibration.clips`` clips)
               ─► metadata_props copied from model.onnx, ``mmbehave.quantization`` = ``STATIC_INT8`` + how calibrated

What was measured on the default tiny model (x86 with VNNI, one thread, 160 test clips against model.onnx; 2 busy
shared cores, so latencies are +-1 ms):
    every op type quantised (the default)          species top-1 agreement 0.94, largest prob diff 0.99, 2.8-4.2 ms
    Conv, MatMul, Gemm only, QUInt8 activations    agreement 1.00 (both heads), largest diff 0.05, 3.0 ms   <- kept
    the same, QInt8 activations                    the same answers, 6.2-6.8 ms (x86's fast int8 kernels are u8 x s8)
    the same, reduce_range (7-bit weights)         largest diff 0.10, 3.9-4.5 ms
    Conv and MatMul only (the heads' Gemm fp32)    largest diff 0.09, 4.1 ms
    without quant_pre_process                      the same answers, 3.3-4.2 ms, a 23% larger file
Quantising the remaining ops (the residual Adds, the masks' Where, around LayerNorm and softmax) rounds values that
feed every later layer and buys no speed: int8 kernels are for the matrix products. ARM cores favour QInt8
activations; that was not measured here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mmbehave.checkpoints.onnx_model import require_onnxruntime

OPS = ("Conv", "MatMul", "Gemm")  # the matrix products: what int8 kernels speed up (the docstring has the measurements)
# What the int8 file's metadata says of it (and what `load_onnx_model` hands on as TrainedModel.quantization).
STATIC_INT8 = {"method": "static", "format": "onnx_qdq", "weights": "qint8_per_channel", "activations": "quint8",
               "calibration": "minmax", "ops": list(OPS)}


def calibration_reader(batches: Iterable[dict[str, np.ndarray]]):
    """An onnxruntime ``CalibrationDataReader`` over ``batches`` (graph input name -> array), read lazily: the
    clips are decoded as calibration asks for them, not all held at once."""
    from onnxruntime.quantization import CalibrationDataReader

    class ClipBatches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = iter(batches)
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            self.count += batch is not None
            return batch

    return ClipBatches()


def quantize_int8(fp32_path: Path, out_path: Path, batches: Iterable[dict[str, np.ndarray]], metadata: dict[str, str],
                  calibration: dict) -> int:
    """Write the static-int8 model of ``fp32_path`` to ``out_path`` (as it is: the caller renames it), calibrated on
    ``batches``; ``metadata``: the fp32 file's mmbehave.* entries, its quantization entry replaced. Returns the
    number of calibration batches read (0 is a CheckpointError: a range from no data is no range)."""
    import json

    from mmbehave.checkpoints.onnx_graph import PREFIX, quiet_onnx_tools, set_metadata
    from mmbehave.core.errors import CheckpointError

    require_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # MinMax calibration keeps only each tensor's min and max per batch (it adds ReduceMin / ReduceMax to the graph),
    # so memory does not grow with calibration.clips. CalibMaxIntermediateOutputs is left unset: onnxruntime 1.32
    # drops the batches it clears instead of merging their ranges.
    reader = calibration_reader(batches)
    with tempfile.TemporaryDirectory(prefix=".onnx-int8-", dir=out_path.parent) as scratch, quiet_onnx_tools():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        try:
            quantize_static(str(prepared), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=list(OPS),
                            calibrate_method=CalibrationMethod.MinMax)
        except ValueError as error:
            if reader.count == 0:
                raise CheckpointError("int8 calibration got no clips; set calibration.clips >= 1.") from error
            raise
    quantization = {**STATIC_INT8, **calibration}
    set_metadata(out_path, {**metadata, PREFIX + "quantization": json.dumps(quantization)})
    return reader.count
