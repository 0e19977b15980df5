"""Preprocessing a raw dataset: files, manifest, statuses, skipping, bad input and the CLI."""

from __future__ import annotations

import math
import wave

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import hydra_dir_override, run_module
from omegaconf import OmegaConf

from mmbehave.core.errors import DataError
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.clip_io import write_clip
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.mel import MEL_FLOOR, log_mel_spectrogram
from mmbehave.data.preprocessing import MANIFEST_COLUMNS, preprocess_dataset

SR = 16000
SETTINGS = PreprocessSettings(num_frames=4, image_size=16, frame_window=None, sample_rate=SR, clip_seconds=1.0,
                              n_mels=32, n_fft=400, hop_length=160)
GOOD = {"with_audio": "ok", "silent": "no_audio", "wav_audio": "ok", "val_clip": "ok", "test_clip": "ok"}
BAD = {"corrupt": "corrupt.mp4", "missing": "missing.mp4"}  # clip -> the file its failure must name
CLI_SETTINGS = ["data.num_frames=4", "data.image_size=16", "data.n_mels=32", "data.n_fft=400", "data.clip_seconds=1.0"]


def _frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)


def _sound(freq: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(SR) / SR)).astype(np.float32)


@pytest.fixture
def raw_root(tmp_path):
    """A tiny raw dataset covering each case: audio track, no audio, separate WAV, corrupt and missing video."""
    root = tmp_path / "dataset"
    videos = DatasetLayout(root).raw_dir / "videos"
    write_clip(videos / "with_audio.mp4", _frames(0), fps=8, audio=_sound(440), sample_rate=SR)
    write_clip(videos / "silent.mp4", _frames(1), fps=8, audio=None)
    write_clip(videos / "elsewhere" / "wav_video.mp4", _frames(2), fps=8, audio=None)
    write_clip(videos / "val_clip.mp4", _frames(3), fps=8, audio=_sound(880), sample_rate=SR)
    write_clip(videos / "test_clip.mp4", _frames(4), fps=8, audio=_sound(220), sample_rate=SR)
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(5).bytes(3000))
    (root / "raw" / "audio").mkdir(parents=True)
    with wave.open(str(root / "raw" / "audio" / "call.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes((np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050) * 16000).astype("<i2").tobytes())
    tables = {
        "train": [("with_audio", "", ""), ("silent", "", ""),
                  ("wav_audio", "videos/elsewhere/wav_video.mp4", "audio/call.wav"), ("corrupt", "", "")],
        "val": [("val_clip", "", "")],
        "test": [("test_clip", "", ""), ("missing", "", "")],
    }
    for split, rows in tables.items():
        frame = pd.DataFrame([{"clip_id": c, "species": "deer", "behavior": "walk", "video_path": v, "audio_path": a,
                               "site": f"site_{c}"} for c, v, a in rows])
        DatasetLayout(root).metadata_dir.mkdir(parents=True, exist_ok=True)
        frame.to_csv(DatasetLayout(root).metadata_csv(split), index=False)
    return root


def _manifest(root) -> pd.DataFrame:
    return pd.read_csv(DatasetLayout(root).manifest, dtype=str, keep_default_na=False).set_index("clip_id")


def _mtimes(root) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in DatasetLayout(root).processed_dir.rglob("*") if p.is_file()}


def test_preprocess_writes_inputs_and_manifest(raw_root):
    summary = preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert (summary.ok, summary.no_audio, summary.skipped) == (4, 1, 0)
    assert dict(summary.failed).keys() == BAD.keys()
    for clip_id, filename in BAD.items():
        assert filename in dict(summary.failed)[clip_id]  # the reason names the file
    assert "FAILED corrupt" in summary.format()

    layout = DatasetLayout(raw_root)
    for clip_id in GOOD:
        frames = torch.load(layout.video_frames(clip_id), weights_only=True)
        assert frames.shape == (4, 3, 16, 16) and frames.dtype == torch.uint8
        mel = np.load(layout.mel_spectrogram(clip_id))
        assert mel.shape == (32, 1 + SR // 160) and mel.dtype == np.float32
    for clip_id in BAD:
        assert not layout.video_frames(clip_id).exists() and not layout.mel_spectrogram(clip_id).exists()

    silent = np.load(layout.mel_spectrogram("silent"))
    assert np.all(silent == np.float32(math.log(MEL_FLOOR)))  # the spectrogram of silence
    assert np.load(layout.mel_spectrogram("wav_audio")).std() > 1  # the separate WAV was used

    manifest = _manifest(raw_root)
    # The table's own columns (labels, site) kept after the manifest's.
    assert list(manifest.reset_index().columns) == [*MANIFEST_COLUMNS, "species", "behavior", "site"]
    assert list(manifest.index) == ["with_audio", "silent", "wav_audio", "corrupt", "val_clip", "test_clip", "missing"]
    for clip_id, status in GOOD.items():
        assert manifest.at[clip_id, "status"] == status
        assert manifest.at[clip_id, "has_audio"] == ("false" if status == "no_audio" else "true")
    for clip_id, filename in BAD.items():
        assert manifest.at[clip_id, "status"].startswith("failed: ") and filename in manifest.at[clip_id, "status"]
    assert manifest.at["val_clip", "split"] == "val" and manifest.at["missing", "site"] == "site_missing"
    assert set(manifest["fingerprint"]) == {SETTINGS.fingerprint()} and set(manifest["n_mels"]) == {"32"}
    assert not [p for p in layout.processed_dir.rglob(".*")]  # no temp files left behind


def test_rerun_skips_done_clips_and_new_settings_redo_them(raw_root):
    preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    before = _mtimes(raw_root)
    again = preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert (again.ok, again.no_audio, again.skipped, len(again.failed)) == (0, 0, 5, 2)  # failures are retried
    after = _mtimes(raw_root)
    before.pop("manifest.csv"), after.pop("manifest.csv")  # rewritten each run; the clips' files are not
    assert after == before

    wider = PreprocessSettings(**{**SETTINGS.__dict__, "n_mels": 24})
    assert wider.fingerprint() != SETTINGS.fingerprint()
    redone = preprocess_dataset(raw_root, wider, num_workers=1, progress=False)
    assert (redone.ok, redone.no_audio, redone.skipped) == (4, 1, 0)
    assert np.load(DatasetLayout(raw_root).mel_spectrogram("with_audio")).shape[0] == 24
    assert set(_manifest(raw_root)["fingerprint"]) == {wider.fingerprint()}


def test_interrupted_run_keeps_finished_clips(raw_root, monkeypatch):
    import mmbehave.data.preprocessing as preprocessing

    real, calls = preprocessing._process_clip, []

    def stop_at_the_third(job, settings):
        calls.append(job.clip_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job, settings)

    monkeypatch.setattr(preprocessing, "_process_clip", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert list(_manifest(raw_root).index) == ["with_audio", "silent"]  # the manifest says what was done
    monkeypatch.setattr(preprocessing, "_process_clip", real)
    resumed = preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert (resumed.skipped, resumed.ok, resumed.no_audio, len(resumed.failed)) == (2, 3, 0, 2)


def test_worker_processes_give_the_same_files(raw_root, tmp_path):
    preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    layout = DatasetLayout(raw_root)
    inline = {c: (torch.load(layout.video_frames(c)), np.load(layout.mel_spectrogram(c))) for c in GOOD}
    other = PreprocessSettings(**{**SETTINGS.__dict__, "n_fft": 512})  # forces a redo, now in 2 processes
    preprocess_dataset(raw_root, other, num_workers=2, progress=False)
    back = preprocess_dataset(raw_root, SETTINGS, num_workers=2, progress=False)
    assert (back.ok, back.no_audio, len(back.failed)) == (4, 1, 2)
    for clip_id, (frames, mel) in inline.items():
        assert torch.equal(torch.load(layout.video_frames(clip_id)), frames)
        assert np.allclose(np.load(layout.mel_spectrogram(clip_id)), mel)


def test_bad_metadata_is_a_data_error_before_any_output(raw_root):
    layout = DatasetLayout(raw_root)
    val = pd.read_csv(layout.metadata_csv("val"))
    val.drop(columns=["clip_id"]).to_csv(layout.metadata_csv("val"), index=False)
    with pytest.raises(DataError, match="val.csv.*clip_id"):
        preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert not layout.processed_dir.exists()

    val.assign(clip_id="with_audio").to_csv(layout.metadata_csv("val"), index=False)
    with pytest.raises(DataError, match="with_audio.*one split"):  # one clip id in two splits
        preprocess_dataset(raw_root, SETTINGS, num_workers=1, progress=False)
    assert not layout.processed_dir.exists()


def test_settings_from_config_and_fingerprint():
    data_cfg = OmegaConf.create({**SETTINGS.__dict__, "clip_seconds": 1, "frame_window": None, "root": "/x",
                                 "augment": {"time_masks": 2}})
    settings = PreprocessSettings.from_config(data_cfg)
    assert settings == SETTINGS and settings.fingerprint() == SETTINGS.fingerprint()  # 1 and 1.0 hash alike
    windowed = PreprocessSettings.from_config(OmegaConf.merge(data_cfg, {"frame_window": [0, 0.5]}))
    assert windowed.frame_window == (0.0, 0.5) and windowed.fingerprint() != SETTINGS.fingerprint()
    with pytest.raises(ValueError, match="n_mels"):
        PreprocessSettings.from_config({k: v for k, v in SETTINGS.__dict__.items() if k != "n_mels"})
    with pytest.raises(ValueError, match="frame_window"):
        PreprocessSettings(**{**SETTINGS.__dict__, "frame_window": (2.0, 1.0)})


def test_log_mel_shapes_and_silence_floor():
    mel = log_mel_spectrogram(_sound(1000), SR, n_mels=40, n_fft=512, hop_length=160)
    assert mel.shape == (40, 1 + SR // 160) and mel.dtype == np.float32
    quiet = log_mel_spectrogram(np.zeros(1234, np.float32), SR, n_mels=40, n_fft=512, hop_length=160)
    assert quiet.shape == (40, 1 + 1234 // 160) and np.all(np.isfinite(quiet)) and np.ptp(quiet) == 0
    assert mel.mean(axis=1).argmax() == log_mel_spectrogram(_sound(1000), SR, 40, 1024, 160).mean(axis=1).argmax()


@pytest.mark.slow
def test_cli_reports_failures_with_exit_code(raw_root, tmp_path):
    """As a user runs it: a subprocess, from a cwd outside the repo."""
    common = [f"data.root={raw_root}", "preprocess.num_workers=1", *CLI_SETTINGS, *hydra_dir_override(tmp_path)]
    failing = run_module("mmbehave.preprocess", *common, tmp_path=tmp_path, env={"HF_HUB_OFFLINE": "1"},
                         timeout=120, check=False)
    assert failing.returncode == 1, failing.stderr[-3000:]
    assert "4 ok, 1 without audio" in failing.stdout and "corrupt.mp4" in failing.stdout
    assert _manifest(raw_root).at["with_audio", "status"] == "ok"

    tolerant = run_module("mmbehave.preprocess", *common, "preprocess.fail_on_error=false", tmp_path=tmp_path,
                          env={"HF_HUB_OFFLINE": "1"}, timeout=120, check=False)
    assert tolerant.returncode == 0, tolerant.stderr[-3000:]
    assert "5 already up to date" in tolerant.stdout


@pytest.mark.slow
def test_cli_bad_metadata_exits_2_with_the_message(tmp_path):
    missing_root = tmp_path / "nothing_here"
    result = run_module("mmbehave.preprocess", f"data.root={missing_root}", *hydra_dir_override(tmp_path),
                        tmp_path=tmp_path, env={"HF_HUB_OFFLINE": "1"}, timeout=120, check=False)
    assert result.returncode == 2
    assert "train.csv: metadata file not found" in result.stdout + result.stderr


@pytest.mark.parametrize("suffix, codec, sample_format", [(".wav", "pcm_s16le", "s16"), (".m4a", "aac", "fltp"),
                                                          (".flac", "flac", "s16")])
def test_an_audio_file_is_a_clip_without_video(tmp_path, suffix, codec, sample_format):
    from media import MediaFormat, write_media

    root = tmp_path / "recorders"
    layout = DatasetLayout(root)
    recording = write_media(layout.raw_dir / "audio" / "dawn_chorus",
                            MediaFormat("recorder", suffix, video_codec=None, audio_codec=codec, audio_format=sample_format))
    layout.metadata_dir.mkdir(parents=True)
    pd.DataFrame([{"clip_id": "dawn", "species": "fox", "behavior": "calling",
                   "video_path": str(recording.relative_to(layout.raw_dir))}]).to_csv(layout.metadata_csv("train"),
                                                                                       index=False)
    summary = preprocess_dataset(root, SETTINGS, num_workers=1, progress=False, splits=("train",))
    assert (summary.no_video, summary.failed) == (1, []) and "1 without video" in summary.format()
    row = _manifest(root).loc["dawn"]
    assert (row["status"], row["has_video"], row["has_audio"]) == ("no_video", "false", "true")
    assert torch.load(layout.video_frames("dawn"), weights_only=True).eq(0).all()  # black frames, the fixed shape
    assert np.load(layout.mel_spectrogram("dawn")).std() > 1  # the recording's sound
