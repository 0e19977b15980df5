"""predict's answers for ecologists, on real MP4s and a real checkpoint: every class's probability
(columns=wide), `uncertain` below a threshold, long clips cut into segments and combined, clips grouped into
events, and the model that made each table."""

from __future__ import annotations

import hashlib
import os

import av
import numpy as np
import pandas as pd
import pytest
from helpers import compose_config, run_module

from mmbehave.core.errors import ConfigError
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.clip_io import write_clip
from mmbehave.predicting.clip_times import clip_time
from mmbehave.predicting.run import run_prediction
from mmbehave.predicting.segments import iter_segments, segment_windows
from mmbehave.predicting.tables import camtrap_rows
from mmbehave.predicting.thresholds import resolve_thresholds, thresholds_from_option

SR = 16000
FPS = 16
SETTINGS = PreprocessSettings(num_frames=8, image_size=32, frame_window=None, sample_rate=SR, clip_seconds=1.0,
                              n_mels=64, n_fft=512, hop_length=320)  # the synthetic data's, as the trained model's
HEADS = ("species", "behavior")


def coloured_clip(path, seconds: int, tone_seconds: tuple[float, float] | None = None):
    """An MP4 whose frame i is a flat colour of its own (so a sampled frame tells its index), with a 440 Hz tone
    during ``tone_seconds`` and silence elsewhere."""
    count = seconds * FPS
    frames = np.zeros((count, 32, 32, 3), np.uint8)
    frames[..., 0] = (np.arange(count) * 5 % 256)[:, None, None]
    frames[..., 1] = (255 - np.arange(count) * 11 % 256)[:, None, None]
    frames[..., 2] = 128
    t = np.arange(seconds * SR) / SR
    audio = np.zeros_like(t, dtype=np.float32)
    if tone_seconds:
        inside = (t >= tone_seconds[0]) & (t < tone_seconds[1])
        audio[inside] = 0.5 * np.sin(2 * np.pi * 440 * t[inside])
    write_clip(path, frames, fps=FPS, audio=audio, sample_rate=SR)
    return frames


def frame_indices(sampled, frames) -> list[int]:
    """Which source frame each sampled frame is, by its colour."""
    colours = frames[:, 0, 0].astype(float)
    return [int(np.linalg.norm(colours - pixel, axis=1).argmin()) for pixel in sampled[:, :, 16, 16].float().numpy()]


def checkpoint_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------- no model needed

def test_segments_cover_the_clip_and_its_tail():
    assert segment_windows(3.0, 1.0, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert segment_windows(3.5, 1.0, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (2.5, 3.5)]  # tail: end-aligned
    assert segment_windows(2.0, 1.0, 0.5) == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert segment_windows(0.6, 1.0, 1.0) == [(0.0, 1.0)]  # shorter than a segment: the whole clip, as today
    assert segment_windows(3.02, 1.0, 1.0) == segment_windows(3.0, 1.0, 1.0)  # encoder padding is no tail


def test_each_segment_is_preprocessed_as_a_clip_cut_to_its_window(tmp_path):
    frames = coloured_clip(tmp_path / "long.mp4", seconds=3, tone_seconds=(1.0, 2.0))
    segments = list(iter_segments(tmp_path / "long.mp4", SETTINGS, length=1.0, stride=1.0))
    assert [(s.start, s.end) for s in segments] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    for k, segment in enumerate(segments):  # a 1 s clip of 16 frames samples linspace(0, 15, 8) of them
        assert frame_indices(segment.clip.frames, frames) == [16 * k + i for i in (0, 2, 4, 6, 9, 11, 13, 15)]
        assert segment.clip.mel.shape == (SETTINGS.n_mels, 51) and segment.clip.has_audio
    loudness = [float(s.clip.mel.mean()) for s in segments]
    assert loudness[1] > loudness[0] + 5 and loudness[1] > loudness[2] + 5  # the tone is in the second one only


def test_threshold_option_is_a_probability_per_head_of_the_model():
    from types import SimpleNamespace

    from mmbehave.data.metadata import ClassLists
    from mmbehave.domain.heads import HeadSpec

    assert thresholds_from_option(None) == {}
    assert thresholds_from_option({"species": 0.7}) == {"species": 0.7}
    for bad, says in ((1.5, "threshold=1.5: must be a probability between 0 and 1"),
                      ("high", "threshold=high"), (True, "threshold=True")):
        with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
            thresholds_from_option(bad)
    heads = (HeadSpec("species", "species"), HeadSpec("action", "action", "multi"))
    model = SimpleNamespace(heads=heads, classes=ClassLists({"species": ["a", "b"], "action": ["x", "y", "z"]}),
                            checkpoint={"thresholds": {"action": [0.2, 0.3, 0.4]}}, path="best.pth")
    # One value for every head; per head; nothing given: the checkpoint's per-class values, no single-head limit.
    assert resolve_thresholds(thresholds_from_option(0.6), model) == {"species": 0.6, "action": 0.6}
    assert resolve_thresholds({"species": 0.7}, model)["species"] == 0.7
    chosen = resolve_thresholds({}, model)
    assert "species" not in chosen and chosen["action"].tolist() == [0.2, 0.3, 0.4]
    with pytest.raises(ConfigError, match="threshold.fox: no such head; this model's heads are species, action"):
        resolve_thresholds({"fox": 0.5}, model)


def test_a_clip_is_timed_by_its_containers_creation_time_else_its_mtime(tmp_path):
    tagged = tmp_path / "tagged.mp4"
    with av.open(str(tagged), "w") as container:  # as cameras write it
        container.metadata["creation_time"] = "2024-06-01T05:30:00.000000Z"
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    os.utime(tagged, (0, 0))
    assert (str(clip_time(tagged).time), clip_time(tagged).source) == ("2024-06-01 05:30:00+00:00", "creation_time")
    coloured_clip(tmp_path / "plain.mp4", seconds=1)  # PyAV writes no creation_time unless told to
    os.utime(tmp_path / "plain.mp4", (1_700_000_000, 1_700_000_000))
    assert (str(clip_time(tmp_path / "plain.mp4").time), clip_time(tmp_path / "plain.mp4").source) == (
        "2023-11-14 22:13:20+00:00", "mtime")


def test_an_uncertain_species_is_camtrap_dps_unknown():
    rows = camtrap_rows([{"species": "uncertain", "behavior": "uncertain"}, {"species": "red_fox", "behavior": "walking"}])
    assert [(row["species"], row["behavior"]) for row in rows] == [("unknown", ""), ("red_fox", "walking")]


# ------------------------------------------------------------------------------------------- the real command

@pytest.fixture
def field_folder(tmp_path):
    """site_a: a 3 s clip and, 10 s after it, a 1 s one (one visit); 1000 s later another 1 s clip.
    site_b: a 1 s clip at the same moment as the first (another camera: another event)."""
    field = tmp_path / "field"
    for name, seconds, folder in (("long", 3, "site_a"), ("next", 1, "site_a"), ("later", 1, "site_a"),
                                  ("other", 1, "site_b")):
        (field / folder).mkdir(parents=True, exist_ok=True)
        coloured_clip(field / folder / f"{name}.mp4", seconds, tone_seconds=(0.2, 0.8))
    start = 1_700_000_000
    for name, offset in (("site_a/long", 0), ("site_a/next", 10), ("site_a/later", 1010), ("site_b/other", 0)):
        os.utime(field / f"{name}.mp4", (start + offset, start + offset))
    return field


@pytest.mark.slow
def test_wide_threshold_segments_events_and_provenance(tmp_path, trained_run, field_folder):
    output = tmp_path / "out" / "answers.csv"
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={field_folder}", f"output={output}",
                          "columns=wide", "threshold=0.99", "segment_stride=1", "segments=true", "event_by=60"],
                         config_name="predict")
    written, rows, failures = run_prediction(cfg)
    assert written == output and not failures and len(rows) == 4
    clips = pd.read_csv(output, keep_default_na=False).set_index("clip_id")
    segments = pd.read_csv(tmp_path / "out" / "answers_segments.csv", keep_default_na=False)
    events = pd.read_csv(tmp_path / "out" / "answers_events.csv", keep_default_na=False)
    wide = {head: [c for c in clips.columns if c.startswith(f"p({head}=")] for head in HEADS}

    # columns=wide: one probability per class, summing to 1 per head; the label is the most probable class.
    assert len(wide["species"]) > 1 and len(wide["behavior"]) > 1
    for head in HEADS:
        np.testing.assert_allclose(clips[wide[head]].sum(axis=1), 1.0, atol=1e-3)
        np.testing.assert_allclose(clips[wide[head]].max(axis=1), clips[f"{head}_prob"], atol=1e-4)
        # threshold=0.99 on a one-epoch model: guesses below it are `uncertain`; top-k still names the guess.
        below = clips[f"{head}_prob"] < 0.99
        assert below.any() and (clips.loc[below, head] == "uncertain").all()
        assert (clips.loc[~below, head] != "uncertain").all()
        assert all(not top.startswith("uncertain") for top in clips[f"{head}_top3"])

    # The 3 s clip on the 1 s model: three segments, and the clip's answer is their mean.
    assert clips["segments"].to_dict() == {"long": 3, "next": 1, "later": 1, "other": 1}
    long = segments[segments["clip_id"] == "long"]
    assert long[["segment", "start_s", "end_s"]].values.tolist() == [[1, 0, 1], [2, 1, 2], [3, 2, 3]]
    all_classes = wide["species"] + wide["behavior"]
    np.testing.assert_allclose(long[all_classes].mean(), clips.loc["long", all_classes].astype(float), atol=2e-4)

    # event_by=60: long and next (10 s apart, same folder) are one visit; later and site_b's clip are their own.
    assert events["clips"].tolist() == [2, 1, 1]
    visit = events.iloc[0]
    assert visit["first_clip"].endswith("site_a/long.mp4") and visit["last_clip"].endswith("site_a/next.mp4")
    assert visit["start_time"] == "2023-11-14T22:13:20Z" and visit["end_time"] == "2023-11-14T22:13:30Z"
    assert visit["time_source"] == "mtime"
    for head in HEADS:
        mean = clips.loc[["long", "next"], wide[head]].mean()
        np.testing.assert_allclose(events.loc[0, wide[head]].astype(float), mean, atol=2e-4)
        assert visit[f"{head}_prob"] == pytest.approx(mean.max(), abs=2e-4)
        assert visit[head] == "uncertain" if mean.max() < 0.99 else visit[head] != "uncertain"

    # Every table says which model made it.
    for table in (clips, segments, events):
        assert set(table["model_sha256"]) == {checkpoint_hash(trained_run.checkpoint)}
        assert set(table["model_run_id"]) == {trained_run.run_id}


@pytest.mark.slow
def test_events_from_a_table_column_and_segments_combined_by_max(tmp_path, trained_run, field_folder):
    table = tmp_path / "visits.csv"
    pd.DataFrame({"path": ["site_a/long.mp4", "site_a/later.mp4", "site_b/other.mp4"],
                  "visit": ["v1", "v1", "v2"]}).to_csv(table, index=False)
    output = tmp_path / "answers.csv"
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={field_folder}", f"output={output}",
                          "columns=wide", "segment_stride=1", "aggregate=max", "segments=true", "event_by=visit",
                          f"event_table={table}"], config_name="predict")
    run_prediction(cfg)
    clips = pd.read_csv(output, keep_default_na=False).set_index("clip_id")
    segments = pd.read_csv(tmp_path / "answers_segments.csv")
    events = pd.read_csv(tmp_path / "answers_events.csv", keep_default_na=False).set_index("event_id")

    # aggregate=max: each class's highest segment probability, rescaled to sum to 1 per head.
    for head in HEADS:
        columns = [c for c in clips.columns if c.startswith(f"p({head}=")]
        highest = segments[segments["clip_id"] == "long"][columns].max()
        np.testing.assert_allclose(clips.loc["long", columns].astype(float), highest / highest.sum(), atol=2e-4)
    # The table's visits, whatever the times; a clip it does not list is an event of its own.
    assert events["clips"].to_dict() == {"v1": 2, "v2": 1, "unlisted:site_a/next.mp4": 1}
    assert events.loc["v1", "first_clip"].endswith("long.mp4") and events.loc["v1", "last_clip"].endswith("later.mp4")


@pytest.mark.slow
def test_bad_answer_options_fail_at_once_with_one_line_and_write_nothing(tmp_path, trained_run, field_folder):
    output = tmp_path / "answers.csv"
    result = run_module("mmbehave.predict", f"checkpoint={trained_run.checkpoint}", f"input={field_folder}",
                        f"output={output}", "threshold=1.5", f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path,
                        check=False)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: threshold=1.5: must be a probability between 0 and 1")
    assert not output.exists()

    for option, says in (("threshold={fox:0.5}", "threshold.fox: no such head"),
                         ("event_by=visit", "event_by=visit names a column: add event_table="),
                         ("segments=true", "segments=true lists the segments of segment_stride="),
                         ("aggregate=median", "aggregate=median: use mean or max")):
        cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={field_folder}", f"output={output}",
                              option], config_name="predict")
        with pytest.raises(ConfigError, match=says):
            run_prediction(cfg)
        assert not output.exists()
