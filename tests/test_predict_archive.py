"""Predicting an archive (``mmbehave/predicting/``): worker processes read clips while the model runs, every
batch on disk before the next, a killed run continues where it stopped, shards merge into the run one machine
would have made, unreadable files are rows of errors.csv, and the review queue puts the least certain first."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import compose_config

from mmbehave.predicting.run import run_prediction
from mmbehave.predicting.state import read_records

CLIPS = 200


@pytest.fixture(scope="module")
def archive(synthetic_root, tmp_path_factory) -> Path:
    """200 clips in camera folders (copies of the benchmark's test clips, upper- and lower-case suffixes), two
    unreadable files, and files that are not clips."""
    root = tmp_path_factory.mktemp("archive")
    sources = sorted((synthetic_root / "raw" / "videos").glob("test_*.mp4"))
    for index in range(CLIPS):
        folder = root / f"site_{index % 4}" / f"camera {index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sources[index % len(sources)], folder / f"clip_{index:04d}{'.MP4' if index % 5 == 0 else '.mp4'}")
    (root / "site_0" / "broken.mp4").write_bytes(b"not a video at all")
    (root / "site_1" / "empty.AVI").write_bytes(b"")
    (root / "site_1" / "notes.txt").write_text("battery low\n")
    (root / "site_2" / "thumbs.db").write_bytes(b"\x00")
    return root


def predict(trained_run, archive: Path, output: Path, *extra: str):
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={archive}", f"output={output}",
                          "batch_size=4", *extra], config_name="predict")
    return run_prediction(cfg)


@pytest.fixture(scope="module")
def straight_run(trained_run, archive, tmp_path_factory) -> Path:
    """One uninterrupted run over the archive, with its review queue: the output's path."""
    output = tmp_path_factory.mktemp("straight") / "predictions.csv"
    predict(trained_run, archive, output, "num_workers=2", "review=true")
    return output


@pytest.fixture(scope="module")
def uninterrupted(straight_run) -> pd.DataFrame:
    return pd.read_csv(straight_run, keep_default_na=False)


def test_the_table_has_one_row_per_readable_clip_in_input_order(uninterrupted):
    assert len(uninterrupted) == CLIPS and uninterrupted["path"].is_unique
    assert uninterrupted["path"].tolist() == sorted(uninterrupted["path"])


def test_unreadable_files_are_rows_of_errors_csv_and_other_files_are_named(trained_run, archive, tmp_path, caplog):
    import logging

    output = tmp_path / "p.csv"
    with caplog.at_level(logging.INFO, logger="mmbehave.predict"):
        _, rows, failures = predict(trained_run, archive, output, "num_workers=2")
    errors = pd.read_csv(tmp_path / "p_errors.csv", keep_default_na=False)
    assert sorted(Path(p).name for p in errors["path"]) == ["broken.mp4", "empty.AVI"]
    assert all(errors["reason"].str.len() > 0) and len(rows) == CLIPS and len(failures) == 2
    assert "2 file(s) are not clips and were left out" in caplog.text and ".txt" in caplog.text and ".db" in caplog.text


def test_a_killed_run_continues_and_ends_with_the_uninterrupted_runs_rows(trained_run, archive, uninterrupted,
                                                                          tmp_path):
    output = tmp_path / "season.csv"
    records = tmp_path / "season_probabilities.jsonl"
    command = [sys.executable, "-m", "mmbehave.predict", f"checkpoint={trained_run.checkpoint}", f"input={archive}",
               f"output={output}", "batch_size=2", "num_workers=1", "review=true", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_run.tracking_uri}
    for stop, enough in ((signal.SIGTERM, 20), (signal.SIGKILL, 60)):
        log = tmp_path / f"{stop.name}.log"
        with log.open("w") as stream:  # a file, not a pipe: a worker that outlived its parent would hold a pipe
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=stream, stderr=stream, text=True)
            deadline = time.time() + 240
            while len(read_records(records)) < enough and process.poll() is None and time.time() < deadline:
                time.sleep(0.2)
            process.send_signal(stop)
            process.wait(timeout=60)
        stderr = log.read_text()
        if stop == signal.SIGTERM:
            assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
            assert "run the same command again to continue" in stderr
        else:
            assert process.returncode == -signal.SIGKILL
        done = len(read_records(records))
        assert enough <= done < CLIPS  # stopped part-way, every finished batch kept
    lines = records.read_text().splitlines()
    assert len(lines) == len(set(lines))
    predict(trained_run, archive, output, "num_workers=2", "review=true")  # the same command again, to the end
    assert read_records(records).keys() == set(uninterrupted["path"])
    assert len(records.read_text().splitlines()) == CLIPS  # every clip predicted exactly once
    pd.testing.assert_frame_equal(pd.read_csv(output, keep_default_na=False), uninterrupted)


def test_a_changed_clip_is_predicted_again_and_the_rest_is_skipped(trained_run, archive, tmp_path, synthetic_root):
    copy = tmp_path / "copy"
    shutil.copytree(archive / "site_3", copy)
    output = tmp_path / "p.csv"
    predict(trained_run, copy, output, "num_workers=0")
    changed = sorted(copy.rglob("*.mp4"))[0]
    other = sorted((synthetic_root / "raw" / "videos").glob("train_*.mp4"))[7]
    shutil.copy(other, changed)  # another clip under the same name
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    lines_before = len((tmp_path / "p_probabilities.jsonl").read_text().splitlines())
    predict(trained_run, copy, output, "num_workers=0")
    lines = (tmp_path / "p_probabilities.jsonl").read_text().splitlines()
    assert len(lines) == lines_before + 1 and str(changed) in lines[-1]
    assert len(pd.read_csv(output)) == lines_before  # still one row per clip


def test_shards_merged_are_the_unsharded_run(trained_run, archive, uninterrupted, straight_run, tmp_path):
    parts = [tmp_path / f"part_{i}.csv" for i in range(2)]
    for index, part in enumerate(parts):
        predict(trained_run, archive, part, f"shard={index}/2", "num_workers=1")
    sizes = [len(pd.read_csv(part)) for part in parts]
    assert sizes == [CLIPS // 2, CLIPS // 2]
    merged = tmp_path / "all.csv"
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"merge=[{parts[0]},{parts[1]}]", f"output={merged}",
                          "review=true"], config_name="predict")
    output, rows, failures = run_prediction(cfg)
    assert output == merged and len(rows) == CLIPS and sorted(Path(p).name for p, _ in failures) == [
        "broken.mp4", "empty.AVI"]
    pd.testing.assert_frame_equal(pd.read_csv(merged, keep_default_na=False), uninterrupted)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "all_review.csv", keep_default_na=False),
                                  pd.read_csv(straight_run.with_name("predictions_review.csv"), keep_default_na=False))


def test_the_review_queue_puts_the_least_certain_clips_first(trained_run, archive, tmp_path):
    output = tmp_path / "p.csv"
    predict(trained_run, archive / "site_0", output, "review=true", "num_workers=0")
    review = pd.read_csv(tmp_path / "p_review.csv", keep_default_na=False)
    records = read_records(tmp_path / "p_probabilities.jsonl")
    assert review["rank"].tolist() == list(range(1, len(records) + 1))
    assert review["margin"].is_monotonic_increasing and set(review["head"]) == {"species"}
    for row in review.itertuples():
        probs = np.sort(records[row.path].probs[0]["species"])[::-1]
        assert row.margin == pytest.approx(probs[0] - probs[1], abs=1e-4)
        assert row.entropy == pytest.approx(-(probs * np.log2(probs)).sum(), abs=1e-4)


def test_estimate_times_a_sample_and_writes_nothing(trained_run, archive, tmp_path, capsys):
    output = tmp_path / "p.csv"
    result = predict(trained_run, archive, output, "estimate=true", "num_workers=1")
    printed = capsys.readouterr().out
    assert result.output is None and not list(tmp_path.iterdir())
    assert f"Estimate: {CLIPS + 2} clip(s) in about" in printed and "clips/s" in printed and "timed on 12" in printed


def test_every_camera_container_is_predicted(trained_run, tmp_path):
    from media import CAMERA_FORMATS, write_media

    folder = tmp_path / "old cameras"
    written = {fmt.name: write_media(folder / fmt.name, fmt) for fmt in CAMERA_FORMATS}
    _, rows, failures = predict(trained_run, folder, tmp_path / "cameras.csv", "num_workers=2")
    table = pd.read_csv(tmp_path / "cameras.csv", keep_default_na=False)
    assert not failures
    assert sorted(table["path"]) == sorted(str(path) for path in written.values())
    assert (table["species"] != "").all() and (table["behavior"] != "").all()
