"""The benchmark script measures the configured model (numbers go to the README, not into assertions)."""

from __future__ import annotations

from helpers import compose_config

from mmbehave.perf.benchmark import run_benchmark


def test_benchmark_reports_speed_memory_and_sizes_for_the_configured_model():
    cfg = compose_config(["benchmark.steps=1", "benchmark.warmup_steps=0", "benchmark.batch_size=2",
                          "audio_encoder=none", "fusion.hidden_dim=32", "benchmark.measure=[model]"],
                         config_name="benchmark")
    result = run_benchmark(cfg)["model"]
    assert result["modalities"] == "video"
    assert result["batch_size"] == 2
    assert result["train_clips_per_s"] > 0 and result["infer_ms_per_clip"] > 0
    assert 0 < result["params_fusion"] < result["params_total"]
    assert result["peak_host_memory_mib"] > 0
