"""`python -m mmbehave.export format=onnx`: model.onnx answers as the torch model does (a clip without sound too, any
batch size), model_int8.onnx mostly agrees with it, one file is a whole model for predict, and a file mmbehave did
not write is refused in one line. The export runs once for the module (it takes seconds)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_here, user_error

from mmbehave.checkpoints.trained_model import load_trained_model
from mmbehave.data.clip_io import write_clip
from mmbehave.data.dataset import collate
from mmbehave.data.prepared import split_dataset
from mmbehave.metrics.epoch_scores import probabilities

pytestmark = pytest.mark.slow
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TEST_CLIPS = ["test_00000", "test_00001", "test_00002"]
# The tests' model is trained for a few batches only: its probabilities are close to uniform, so int8 rounding
# flips more near-ties than on a trained model. Measured on it (20 test clips): 0.925 (species 0.90, behavior 0.95).
INT8_AGREEMENT_FLOOR = 0.75


@pytest.fixture(scope="module")
def onnx_export(trained_run, tmp_path_factory):
    """One `export format=onnx` of the session's trained model, in this process: (folder, report, printed output)."""
    folder = tmp_path_factory.mktemp("onnx_export")
    ran = run_here("export", f"checkpoint={trained_run.checkpoint}", "format=onnx", f"output_dir={folder / 'out'}",
                   "calibration.clips=16", "latency.clips=3", "latency.warmup=1", tmp_path=folder,
                   env=trained_run.env)
    return folder / "out", ran.value, ran.output


def batch_of(trained, indices: list[int]) -> dict:
    """Test clips as model inputs with their present flags."""
    dataset = split_dataset(trained, "test")
    batch = collate([dataset[i] for i in indices])
    return {name: batch[name] for name in ("video", "audio", "video_present", "audio_present")}


def probs_of(trained, output) -> dict[str, np.ndarray]:
    return {head.name: probabilities(head, output.logits[head.name]) for head in trained.heads}


def test_model_onnx_answers_as_torch_with_and_without_sound_at_any_batch_size(onnx_export, trained_run):
    out, report, printed = onnx_export
    assert sorted(p.name for p in out.iterdir()) == ["export_report.csv", "export_report.json", "model.onnx",
                                                     "model_int8.onnx"]  # no temp file left beside them
    torch_model = load_trained_model(trained_run.checkpoint)
    exported = load_trained_model(out / "model.onnx")
    assert exported.runtime == "onnxruntime" and list(exported.model.parameters()) == []

    batch = batch_of(torch_model, [0, 1, 2])
    batch["audio_present"][1] = False  # this clip is predicted from its video alone
    with torch.no_grad():
        expected = probs_of(torch_model, torch_model.model(**batch))
        video_only = probs_of(torch_model, torch_model.model(video=batch["video"][1:2]))
        with_sound = probs_of(torch_model, torch_model.model(video=batch["video"][1:2], audio=batch["audio"][1:2]))
    for size in (3, 1):  # the batch dimension is dynamic: the graph was traced at 2
        got = probs_of(exported, exported.model(**{name: value[:size] for name, value in batch.items()}))
        for head, values in expected.items():
            np.testing.assert_allclose(got[head], values[:size], atol=1e-4, err_msg=f"{head}, batch {size}")
    clip = {name: value[1:2] for name, value in batch.items()}
    lone = probs_of(exported, exported.model(**clip))
    heard = probs_of(exported, exported.model(**{**clip, "audio_present": torch.tensor([True])}))
    for head in video_only:  # absent sound is the torch model's video-only answer; present, its answer with sound
        np.testing.assert_allclose(lone[head], video_only[head], atol=1e-4)
        np.testing.assert_allclose(heard[head], with_sound[head], atol=1e-4)
    assert not np.allclose(video_only["behavior"], with_sound["behavior"], atol=1e-3)  # the flag matters

    rows = {row["model"]: row for row in report["models"]}
    assert list(rows) == ["torch_fp32", "onnx_fp32", "onnx_int8"]
    assert rows["onnx_fp32"]["max_abs_prob_diff"] <= 1e-4 and rows["onnx_fp32"]["agreement_with_fp32"] == 1.0
    assert max(report["export_check_max_prob_diff"].values()) <= 1e-4
    int8 = rows["onnx_int8"]
    assert int8["size_mb"] < 0.5 * rows["onnx_fp32"]["size_mb"]  # int8 weights: a quarter of the bytes, and scales
    assert int8["agreement_with_fp32"] >= INT8_AGREEMENT_FLOOR, int8
    assert {"species_agreement", "behavior_agreement"} <= set(int8)
    assert all(row["latency_ms"] > 0 and 0 <= row["test_macro_f1"] <= 1 for row in rows.values())
    assert "onnx_int8" in printed and f"checkpoint={out / 'model_int8.onnx'}" in printed

    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(trained_run.tracking_uri).get_run(trained_run.run_id).data.metrics
    assert metrics["export/onnx_int8_agreement_with_fp32"] == pytest.approx(int8["agreement_with_fp32"])
    assert metrics["export/onnx_fp32_max_abs_prob_diff"] == pytest.approx(rows["onnx_fp32"]["max_abs_prob_diff"])


def test_the_metadata_is_json_and_names_the_source(onnx_export, trained_run):
    out, _, _ = onnx_export
    stored = {entry.key: entry.value for entry in onnx.load(str(out / "model.onnx")).metadata_props}
    values = {key.removeprefix("mmbehave."): json.loads(value) for key, value in stored.items()
              if key.startswith("mmbehave.")}
    trained = load_trained_model(trained_run.checkpoint)
    assert values["classes"] == trained.classes.to_dict()
    assert values["inputs"] == ["video", "video_present", "audio", "audio_present"]
    assert values["outputs"] == ["species", "behavior"] and values["quantization"] is None
    assert values["source_sha256"] == hashlib.sha256(trained_run.checkpoint.read_bytes()).hexdigest()
    assert values["mlflow_run_id"] == trained_run.run_id
    int8 = load_trained_model(out / "model_int8.onnx")
    assert int8.quantization["method"] == "static" and int8.quantization["clips"] == 16
    assert int8.classes.to_dict() == trained.classes.to_dict()


def test_predict_with_a_copied_model_onnx_gives_the_checkpoints_answers(onnx_export, trained_run, synthetic_root,
                                                                        tmp_path):
    out, _, _ = onnx_export
    elsewhere = tmp_path / "field_laptop" / "deer.onnx"  # one file, away from the export and the training run
    elsewhere.parent.mkdir()
    shutil.copy(out / "model.onnx", elsewhere)
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip_id in TEST_CLIPS:
        shutil.copy(synthetic_root / "raw" / "videos" / f"{clip_id}.mp4", clips / f"{clip_id}.mp4")
    frames = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    write_clip(clips / "silent.mp4", frames, fps=16)  # no audio track: audio_present=False

    tables = {}
    for name, checkpoint in (("pth", trained_run.checkpoint), ("onnx", elsewhere)):
        output = tmp_path / name / "predictions.csv"
        run_here("predict", f"checkpoint={checkpoint}", f"input={clips}", f"output={output}", tmp_path=tmp_path,
                 run=f"run_{name}")
        tables[name] = pd.read_csv(output, keep_default_na=False).set_index("clip_id").sort_index()
    pth, onnx_table = tables["pth"], tables["onnx"]
    assert list(onnx_table.index) == sorted([*TEST_CLIPS, "silent"]) and not onnx_table.loc["silent", "has_audio"]
    assert onnx_table.columns.tolist() == pth.columns.tolist()
    for head in ("species", "behavior"):
        assert onnx_table[head].tolist() == pth[head].tolist()
        np.testing.assert_allclose(onnx_table[f"{head}_prob"], pth[f"{head}_prob"], atol=2e-4)
    assert (onnx_table["model_run_id"] == trained_run.run_id).all()  # from the metadata: no training files needed


def test_a_foreign_or_broken_onnx_file_is_refused_in_one_line_naming_it(tmp_path, monkeypatch):
    from onnx import TensorProto, helper

    foreign = tmp_path / "someone_elses.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(foreign))
    message = user_error(lambda: load_trained_model(foreign))
    assert message.startswith(str(foreign)) and "without mmbehave's metadata" in message

    broken = tmp_path / "truncated.onnx"
    broken.write_bytes(foreign.read_bytes()[:20])
    message = user_error(lambda: load_trained_model(broken))
    assert message.startswith(str(broken)) and "not a readable ONNX model" in message

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a machine without it: import fails
    assert 'pip install "mmbehave[onnx]"' in user_error(lambda: load_trained_model(foreign))


def test_an_export_that_disagrees_with_torch_leaves_nothing(trained_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"an earlier export")  # kept as it was
    message = user_error(lambda: run_here("export", f"checkpoint={trained_run.checkpoint}", "format=onnx",
                                          f"output_dir={out}", "onnx.atol=1e-30", "mlflow.log=false",
                                          tmp_path=tmp_path))
    assert "onnx.atol=1e-30" in message and ("species" in message or "behavior" in message)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    assert (out / "model.onnx").read_bytes() == b"an earlier export"


def test_the_int8_row_measures_both_int8_models_against_fp32_and_keeps_the_faster_that_agrees(onnx_export, trained_run,
                                                                                           tmp_path):
    """The benchmark's int8 row on the session's model: every runtime predicts the same held-in-memory test split,
    torch fp32 is the reference, and the kept int8 model follows the issue's rule (faster, agreeing >= 0.98)."""
    from mmbehave.perf.benchmark_table import int8_details
    from mmbehave.perf.int8_rows import RUNTIMES, measure_seed, summarise

    pth_dir = tmp_path / "pth"
    run_here("export", f"checkpoint={trained_run.checkpoint}", f"output_dir={pth_dir}", "latency.clips=3",
             "latency.warmup=1", "mlflow.log=false", tmp_path=tmp_path)
    seed = measure_seed(pth_dir, onnx_export[0], batch_size=8)
    assert seed["clips"] == 20 and set(seed["runtimes"]) == set(RUNTIMES)
    fp32 = seed["runtimes"]["torch_fp32"]
    assert fp32["agreement"] == {"species": 1.0, "behavior": 1.0} and fp32["latency_ms_batch1"] > 0
    assert seed["runtimes"]["onnx_fp32"]["agreement"] == {"species": 1.0, "behavior": 1.0}  # exported within atol
    for runtime in ("torch_dynamic_int8", "onnx_static_int8"):
        assert all(INT8_AGREEMENT_FLOOR <= share <= 1.0 for share in seed["runtimes"][runtime]["agreement"].values())
        assert seed["runtimes"][runtime]["clips_per_s"] > 0 and seed["runtimes"][runtime]["latency_ms_batch1"] > 0
    assert seed["runtimes"]["torch_auto"]["plan"].startswith("precision=auto")

    # The rule, on this seed's numbers made to disagree one way and then the other.
    def with_int8(fast: str, agreeing: set[str]) -> dict:
        out = json.loads(json.dumps(seed))
        for runtime in ("torch_dynamic_int8", "onnx_static_int8"):
            entry = out["runtimes"][runtime]
            entry["clips_per_s"] = 2 * fp32["clips_per_s"] if runtime == fast else 1.5 * fp32["clips_per_s"]
            entry["agreement"] = {head: 1.0 if runtime in agreeing else 0.9 for head in entry["agreement"]}
        return out

    both = summarise([with_int8("onnx_static_int8", {"torch_dynamic_int8", "onnx_static_int8"})], [0])
    assert both["kept"] == "onnx_static_int8" and both["ratio"] == pytest.approx(2.0)
    slower = summarise([with_int8("onnx_static_int8", {"torch_dynamic_int8"})], [0])
    assert slower["kept"] == "torch_dynamic_int8" and slower["ratio"] == pytest.approx(1.5)
    neither = summarise([with_int8("onnx_static_int8", set())], [0])
    assert neither["kept"] is None and neither["ratio"] == 0.0
    assert "int8 kept: neither" in "\n".join(int8_details({"int8": neither}))
