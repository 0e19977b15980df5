"""How close the real code runs to what this machine allows, measured side by side in one run.

    python -m mmbehave.benchmark                                       # the CPU default, a few minutes
    python -m mmbehave.benchmark benchmark.measure=[model]             # only the model on random inputs (seconds)
    python -m mmbehave.benchmark experiment=guide hardware=cuda video_encoder.pretrained=false audio_encoder.pretrained=false

Prints a Markdown table, each row a ratio of the real thing to its bound with the target it should meet, and
writes ``benchmark.json`` and ``benchmark.md`` into the run folder (outputs/benchmark/...). What each row
measures: ``mmbehave/perf/``. Numbers for the README come from here, never from timed tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("benchmark")
def main(cfg: DictConfig) -> None:
    from mmbehave.core.atomic import write_text_atomic
    from mmbehave.perf.benchmark import run_benchmark
    from mmbehave.perf.benchmark_table import markdown

    results = run_benchmark(cfg)
    table = markdown(results)
    out = Path(cfg.benchmark.output_dir)
    write_text_atomic(out / "benchmark.json", json.dumps(results, indent=2, default=str))
    write_text_atomic(out / "benchmark.md", table + "\n")
    print(table)
    print(f"\n{out / 'benchmark.json'}")


if __name__ == "__main__":
    main()
