"""``precision=auto`` (``mmbehave/models/precision_plan.py``): bf16 for the parts of a model that cost enough, on a
CPU with bf16 matrix units, fp32 otherwise; the detection forced either way with ``MMBEHAVE_CPU_BF16``; what a
run records; a bf16 feature cache kept apart from an fp32 one; the agreement check of the benchmark's precision
row. The models are the tiny default, so ``hardware.bf16_min_gflop`` is lowered to put a part over the line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_SPLITS, compose_config, frozen_pretrained_encoders, train_here, user_error
from mlflow.tracking import MlflowClient

from mmbehave.core.cpu_features import BF16_FLAGS, OVERRIDE, _cpuinfo_flags, _torch_probe, bf16_matrix_units
from mmbehave.core.instantiate import build
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.models.precision_plan import apply_plan, example_inputs, plan_precision

CPU = torch.device("cpu")


def tiny_model():
    cfg = compose_config()
    torch.manual_seed(0)
    model = build(cfg.model, num_classes={"species": 4, "behavior": 5}).eval()
    return model, example_inputs(PreprocessSettings.from_config(cfg.data), ("video", "audio"))


def clips(inputs, count=3):
    generator = torch.Generator().manual_seed(1)
    return {name: torch.rand(count, *x.shape[1:], generator=generator) for name, x in inputs.items()}


def answers_before_and_after_auto(min_gflop: float):
    """(logits of the tiny model as built, its plan for precision=auto, the logits with that plan)."""
    model, inputs = tiny_model()
    batch = clips(inputs)
    with torch.no_grad():
        before = model(**batch).logits
        plan = apply_plan(model, plan_precision(model, "auto", CPU, inputs, min_gflop=min_gflop))
        return before, plan, model(**batch).logits


def test_the_detection_agrees_with_the_cpus_flags_and_the_override_wins(monkeypatch):
    monkeypatch.delenv(OVERRIDE, raising=False)
    probe = _torch_probe()
    if probe is not None:  # torch's answer and the kernel's flags say the same of this machine
        assert probe.present == bool(set(BF16_FLAGS) & _cpuinfo_flags())
    assert bf16_matrix_units().present == bool(set(BF16_FLAGS) & _cpuinfo_flags())
    for forced, present in (("0", False), ("1", True)):
        monkeypatch.setenv(OVERRIDE, forced)
        assert bf16_matrix_units().present is present and f"{OVERRIDE}={forced}" in str(bf16_matrix_units())


def test_without_bf16_units_auto_is_fp32_everywhere_and_the_answers_are_bit_identical(monkeypatch):
    monkeypatch.setenv(OVERRIDE, "0")
    before, plan, after = answers_before_and_after_auto(min_gflop=0.0)  # even at 0 GFLOP
    assert set(plan.parts.values()) == {"fp32"} and "has no bf16 matrix units" in plan.line()
    assert all(torch.equal(before[head], after[head]) for head in before)


def test_on_a_bf16_cpu_auto_puts_only_the_parts_that_cost_enough_in_bf16(monkeypatch):
    monkeypatch.setenv(OVERRIDE, "1")
    reference, plan, mixed = answers_before_and_after_auto(min_gflop=0.1)
    # the tiny ResNet18 costs 0.26 GFLOP a clip, the tiny VideoMAE 0.02, the fusion less: only the audio encoder
    assert plan.parts == {"video_encoder": "fp32", "audio_encoder": "bf16", "fusion": "fp32", "heads": "fp32"}
    assert "0.259 GFLOP a clip >= 0.1" in plan.reasons["audio_encoder"] and plan.reasons["heads"] == "the answers"
    assert plan.params()["precision/audio_encoder"] == "bf16"
    for head in reference:
        assert mixed[head].dtype == torch.float32  # a bf16 part hands fp32 on
        assert not torch.equal(mixed[head], reference[head])  # the audio encoder really ran in bf16 ...
        assert torch.allclose(mixed[head], reference[head], atol=0.05)  # ... and its answers barely moved
    model, inputs = tiny_model()
    everything = plan_precision(model, "bf16", CPU, inputs)  # asked for by name: one precision for all
    assert set(everything.parts.values()) == {"bf16"} and plan_precision(model, "auto", CPU, inputs).parts == {
        "video_encoder": "fp32", "audio_encoder": "fp32", "fusion": "fp32", "heads": "fp32"}  # the default 1 GFLOP


def test_fp16_on_a_cpu_is_one_line_for_evaluate_and_predict():
    from mmbehave.core.precision import read_precision

    assert "precision=fp16 needs a CUDA device" in user_error(lambda: read_precision("fp16", "cpu", "precision"))
    assert "use one of auto, fp32, bf16, fp16" in user_error(lambda: read_precision("fp8", "cpu", "precision"))


@pytest.mark.slow
def test_a_run_records_its_plan_and_a_bf16_feature_cache_is_kept_apart(tmp_path, synthetic_root):
    frozen = frozen_pretrained_encoders(tmp_path / "weights")
    common = ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), *frozen, "training.feature_cache=true",
              f"training.feature_cache_dir={tmp_path / 'cache'}", "hardware.bf16_min_gflop=0.1"]
    mixed = train_here(tmp_path, *common, run="auto", env={OVERRIDE: "1"})
    train_here(tmp_path, *common, "hardware.precision=fp32", run="fp32", env={OVERRIDE: "1"})
    assert "precision=auto: video_encoder fp32" in mixed.output and "audio_encoder bf16" in mixed.output

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    params = {run.data.tags["run_dir"].rsplit("/", 1)[-1]: run.data.params for run in runs}
    assert params["auto"]["precision/audio_encoder"] == "bf16" and params["fp32"]["precision/audio_encoder"] == "fp32"
    assert "amx_bf16" in params["auto"]["precision/hardware"] or OVERRIDE in params["auto"]["precision/hardware"]
    bf16_key, fp32_key = params["auto"]["feature_cache.audio"], params["fp32"]["feature_cache.audio"]
    assert bf16_key.endswith(" (bf16)") and not fp32_key.endswith(")")  # a bf16 cache says so
    assert bf16_key.split()[0] != fp32_key  # and a run in fp32 never reads it
    assert params["auto"]["feature_cache.video"] == params["fp32"]["feature_cache.video"]  # fp32 in both: shared
    folders = sorted(path.name for path in (tmp_path / "cache").iterdir())
    assert folders == sorted([f"audio-{bf16_key.split()[0]}", f"audio-{fp32_key}",
                              f"video-{params['auto']['feature_cache.video']}"])


def test_the_agreement_check_counts_the_answers_that_differ():
    from mmbehave.analysis.predictions import SplitPredictions
    from mmbehave.domain.heads import head_specs
    from mmbehave.perf.precision_rows import head_agreement

    heads = head_specs({"species": {"column": "species"}, "action": {"column": "action", "type": "multi"}})
    one = np.eye(3)[[0, 1, 2, 0]]
    other = one.copy()
    other[3] = [0.2, 0.7, 0.1]  # the fourth clip's species changes
    labels = np.array([[0.9, 0.1], [0.6, 0.3], [0.2, 0.2], [0.7, 0.8]])
    moved = labels.copy()
    moved[1, 0] = 0.4  # one label of eight crosses its 0.5 threshold

    def predictions(species, action):
        return SplitPredictions(clip_ids=list("abcd"), targets={"species": np.zeros(4), "action": np.zeros((4, 2))},
                                probs={"all": {"species": species, "action": action}}, heads=heads)

    shares = head_agreement(predictions(one, labels), predictions(other, moved), heads, {"action": [0.5, 0.5]})
    assert shares == {"species": 0.75, "action": 0.875}
    assert head_agreement(predictions(one, labels), predictions(one, labels), heads, {}) == {"species": 1.0,
                                                                                             "action": 1.0}


def test_the_precision_rows_comparison_on_a_trained_model(trained_run, monkeypatch):
    from mmbehave.perf.precision_rows import compare_precisions

    monkeypatch.setenv(OVERRIDE, "1")
    row = compare_precisions(trained_run.checkpoint, batch_size=8, min_gflop=0.1)
    assert row["clips"] == 20 and "audio_encoder bf16" in row["auto"]["plan"]
    for precision in ("auto", "bf16"):
        assert set(row[precision]["agreement"]) == {"species", "behavior"}
        assert all(0.8 <= share <= 1.0 for share in row[precision]["agreement"].values())
        assert row[precision]["clips_per_s"] > 0 and row[precision]["encode_clips_per_s"] > 0
    assert abs(row["auto"]["macro_f1"] - row["fp32"]["macro_f1"]) < 0.1
