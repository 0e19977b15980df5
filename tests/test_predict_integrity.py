"""Predict's records never lose a clip silently: a torn last line is cut off before the next run appends (else the
next record is glued onto it and both are unreadable), every run ends with each clip accounted for, and the shard
example that predict prints works when pasted."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import compose_config

from mmbehave.core.errors import ConfigError, InputError, StorageError
from mmbehave.core.locks import exclusive
from mmbehave.predicting.run import check_every_clip_accounted, run_prediction
from mmbehave.predicting.shards import shard_of
from mmbehave.predicting.state import read_records, repair_torn_tail

CLIPS = 6


@pytest.fixture
def clips(synthetic_root, tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for source in sorted((synthetic_root / "raw" / "videos").glob("test_*.mp4"))[:CLIPS]:
        shutil.copy(source, folder / source.name)
    return folder


def predict(trained_run, clips: Path, output: Path, *extra: str):
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={clips}", f"output={output}",
                          "batch_size=2", "num_workers=0", *extra], config_name="predict")
    return run_prediction(cfg)


def test_a_torn_last_record_is_cut_off_and_its_clip_predicted_again(trained_run, clips, tmp_path, caplog):
    output = tmp_path / "p.csv"
    predict(trained_run, clips, output)
    records = tmp_path / "p_probabilities.jsonl"
    text = records.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    records.write_text(text[: len(text) - len(last) // 2 - 1])  # the last line half written, no newline
    with caplog.at_level(logging.WARNING):
        predict(trained_run, clips, output)
    assert "unfinished line" in caplog.text and "p_probabilities.jsonl" in caplog.text
    assert records.read_text().endswith("\n")
    assert len(read_records(records)) == CLIPS  # on a glued line one clip would be missing
    assert len(pd.read_csv(output)) == CLIPS


def test_repair_leaves_a_whole_file_alone_and_cuts_a_file_of_one_torn_line(tmp_path):
    whole = tmp_path / "whole.jsonl"
    whole.write_text('{"a": 1}\n{"b": 2}\n')
    assert repair_torn_tail(whole) == 0 and whole.read_text() == '{"a": 1}\n{"b": 2}\n'
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"a": 1}\n{"b": 2}\n{"c": ' + "x" * 70_000)  # longer than one backwards read
    assert repair_torn_tail(torn) == 70_006 and torn.read_text() == '{"a": 1}\n{"b": 2}\n'
    only = tmp_path / "only.jsonl"
    only.write_text('{"a": ')
    assert repair_torn_tail(only) == 6 and only.read_bytes() == b""
    assert repair_torn_tail(tmp_path / "absent.jsonl") == 0


def test_a_clip_neither_predicted_nor_failed_ends_the_run_non_zero_naming_it(tmp_path):
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"]
    check_every_clip_accounted(clips, {str(clips[0]), str(clips[1])}, {str(clips[2])}, tmp_path / "p.jsonl")
    with pytest.raises(StorageError, match=r"1 of 3 clip\(s\) .*/b\.mp4.*run the same command again"):
        check_every_clip_accounted(clips, {str(clips[0])}, {str(clips[2])}, tmp_path / "p.jsonl")


def test_the_shard_example_in_the_message_works_when_pasted_into_a_job_script(monkeypatch):
    with pytest.raises(ConfigError) as refused:
        shard_of([Path("x.mp4")], "first")
    example = re.search(r"SLURM: (shard=\S+)", str(refused.value)).group(1)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    expanded = os.path.expandvars(example)  # what bash makes of it in the job script
    assert expanded == "shard=3/16"
    clips = [Path(f"{i}.mp4") for i in range(32)]
    assert shard_of(clips, expanded.split("=", 1)[1]) == [clips[3], clips[19]]


def shards(trained_run, clips: Path, folder: Path, count: int = 2) -> list[Path]:
    parts = [folder / f"part_{i}.csv" for i in range(count)]
    for index, part in enumerate(parts):
        predict(trained_run, clips, part, f"shard={index}/{count}")
    return parts


def merge(trained_run, parts: list[Path], output: Path, *extra: str):
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"merge=[{','.join(map(str, parts))}]",
                          f"output={output}", *extra], config_name="predict")
    return run_prediction(cfg)


def test_merge_refuses_a_season_with_a_shard_missing_doubled_or_unfinished(trained_run, clips, tmp_path, caplog):
    parts = shards(trained_run, clips, tmp_path)
    assert '"shard": "1/2"' in (tmp_path / "part_1_probabilities.jsonl").read_text().splitlines()[0]
    season = tmp_path / "season.csv"
    with pytest.raises(InputError, match=r"shard\(s\) 1/2 missing.*allow_partial=true"):
        merge(trained_run, parts[:1], season)
    with pytest.raises(InputError, match=r"shard 0/2 is given twice"):
        merge(trained_run, [parts[0], parts[0], parts[1]], season)
    records = tmp_path / "part_1_probabilities.jsonl"
    whole = records.read_text()
    records.write_text("".join(whole.splitlines(keepends=True)[:-1]))  # a shard job killed before its last batch
    with pytest.raises(InputError, match=r"shard 1/2 \(.*part_1\.csv\) is unfinished: 2 of 3 clips"):
        merge(trained_run, parts, season)
    assert not season.exists()  # nothing written by a refused merge
    with caplog.at_level(logging.WARNING):
        output, rows, _ = merge(trained_run, parts, season, "allow_partial=true")
    assert len(rows) == CLIPS - 1 and "unfinished: 2 of 3" in caplog.text
    records.write_text(whole)
    assert len(merge(trained_run, parts, season).rows) == CLIPS


def test_merge_refuses_shards_of_another_input_and_runs_that_were_not_sharded(trained_run, clips, tmp_path):
    parts = shards(trained_run, clips, tmp_path)
    fewer = tmp_path / "fewer"
    shutil.copytree(clips, fewer)
    next(fewer.iterdir()).unlink()
    other = tmp_path / "other_1.csv"
    predict(trained_run, fewer, other, "shard=1/2")
    with pytest.raises(InputError, match=r"other_1\.csv is shard 1/2 of input \w+, but .*part_0\.csv is shard 0/2"):
        merge(trained_run, [parts[0], other], tmp_path / "season.csv")
    whole = tmp_path / "whole.csv"
    predict(trained_run, clips, whole)
    with pytest.raises(InputError, match=r"whole\.csv has no whole_shard\.json .*shard=i/N"):
        merge(trained_run, [whole], tmp_path / "season.csv")
    with pytest.raises(ConfigError, match=r"holds shard 0/2 .* not shard 1/2"):
        predict(trained_run, clips, parts[0], "shard=1/2")  # one output, two shards: its records would mix


def test_a_second_predict_on_one_output_waits_for_the_first_then_skips_its_clips(trained_run, clips, tmp_path,
                                                                                 caplog):
    output = tmp_path / "p.csv"
    records = tmp_path / "p_probabilities.jsonl"
    second = threading.Thread(target=predict, args=(trained_run, clips, output))
    with caplog.at_level(logging.WARNING), exclusive(records):  # the first run, as far as the second can tell
        second.start()
        deadline = time.monotonic() + 60
        while "another predict run is writing" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "another predict run is writing" in caplog.text and str(output) in caplog.text
        assert not records.exists()  # it waits before it reads or writes a record
    second.join(timeout=120)
    assert not second.is_alive() and len(records.read_text().splitlines()) == CLIPS
    predict(trained_run, clips, output)
    assert len(records.read_text().splitlines()) == CLIPS  # a run after it appends nothing
