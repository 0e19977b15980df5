"""Export a trained model for CPU inference, in fp32 and dynamic int8, and compare the two side by side.

    python -m mmbehave.export checkpoint=outputs/<date>/<time>/checkpoints/best.pth
    python -m mmbehave.export run_id=<MLflow run id> latency.threads=4

    checkpoint ─► model_fp32.pth   fp32 weights + what inference needs (no optimizer state)
       │
       └─ torch.ao quantize_dynamic(nn.Linear → int8 weights, activations quantised per batch on the fly)
          ─► model_int8.pth    int8 weights + the same, and ``quantization`` saying how they were made
    both ─► file size, CPU latency per clip (batch 1, median), test-split macro-F1, agreement with fp32
         ─► printed table, export_report.json / .csv, export/* metrics on the training's MLflow run

Both files are plain dicts of tensors and strings, like a training checkpoint, so ``torch.load(path,
weights_only=True)`` reads them and no code runs on load. A quantised module cannot be rebuilt from its state
dict alone, so loading rebuilds the fp32 model from the stored config, quantises it the same way and then loads
the int8 state: ``mmbehave.checkpoints.trained_model.load_trained_model(path)``, which is what evaluate and predict use:

    python -m mmbehave.predict checkpoint=<export dir>/model_int8.pth input=clips/ output=predictions.csv

Only Linear layers are quantised (attention projections, MLPs, heads): the convolutions of ResNet18 and of
VideoMAE's patch embedding, and nn.MultiheadAttention's fused input projection, stay fp32. int8 runs on CPU only.

    python -m mmbehave.export checkpoint=<best.pth> format=onnx      # needs pip install "mmbehave[onnx]"

    checkpoint ─► model.onnx        one fp32 graph (dynamic batch) + its settings as JSON metadata, checked against
       │                            torch at export (onnx.atol); onnxruntime runs it on x86 and ARM CPUs
       └─ onnxruntime quantize_static (int8 weights and activations of Conv / MatMul / Gemm, ranges calibrated on
          calibration.clips training clips) ─► model_int8.onnx
    torch fp32, onnx fp32, onnx int8 ─► the same comparison, plus agreement per head and the largest probability
                                        difference from torch (``mmbehave.analysis.onnx_comparison``)

evaluate and predict take either .onnx file as ``checkpoint=`` too (``mmbehave.checkpoints.onnx_model``).
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("export")
def main(cfg: DictConfig) -> None:
    from mmbehave.analysis.export_comparison import run_export

    run_export(cfg)


if __name__ == "__main__":
    main()
