"""The built-in benchmark: its label design splits each task across the modalities, it is deterministic
for a seed, and its processed files are exactly what preprocessing the raw clips gives."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_SPLITS, compose_config

from mmbehave.data.clip_reader import read_audio, read_video_frames
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.mel import log_mel_spectrogram
from mmbehave.data.preprocessing import preprocess_from_config
from mmbehave.data.synthetic.generator import (
    SETTINGS_FILE,
    ensure_synthetic_dataset,
    generate_raw,
    generator_settings,
)
from mmbehave.data.synthetic.scenes import (
    BEHAVIORS,
    SPECIES,
    SceneSize,
    render_audio,
    render_video,
)


def separable_by(table: dict, a: str, b: str) -> set[str]:
    """Which modalities tell two labels apart: index 0 of each entry is what video shows, 1 what audio carries."""
    return {m for i, m in enumerate(("video", "audio")) if table[a][i] != table[b][i]}


@pytest.mark.parametrize("table, minimum", [(SPECIES, 4), (BEHAVIORS, 5)])
def test_each_task_needs_both_modalities(table, minimum):
    assert len(table) >= minimum
    pairs = {pair: separable_by(table, *pair) for pair in itertools.combinations(table, 2)}
    assert all(pairs.values()), f"some pair is separable by neither modality: {pairs}"
    assert {"video"} in pairs.values(), "no pair is separable by the video alone"
    assert {"audio"} in pairs.values(), "no pair is separable by the audio alone"


def test_rendered_motion_and_voice_carry_their_labels():
    size = SceneSize(num_frames=8, frame_size=32, sample_rate=16000, clip_seconds=1.0)
    rng = np.random.default_rng(0)

    def motion_energy(behavior):
        frames = render_video(rng, "red_fox", behavior, size).astype(np.float32)
        return float(np.abs(np.diff(frames, axis=0)).mean())

    still = np.mean([motion_energy("resting") for _ in range(5)])
    fast = np.mean([motion_energy("running") for _ in range(5)])
    assert fast > 2 * still

    def spectral_centroid(species):
        mel = log_mel_spectrogram(render_audio(rng, species, "calling", size), 16000, 64, 512, 160)
        power = np.exp(mel).sum(axis=1)
        return float((power * np.arange(64)).sum() / power.sum())

    assert spectral_centroid("red_fox") > spectral_centroid("red_deer") + 5  # high whistle vs low grunt


def tiny_settings(seed: int) -> dict:
    return {"seed": seed, "clips_per_split": {"train": 5, "val": 2, "test": 2}, "fps": 8, "clip_seconds": 1.0,
            "raw_frame_size": 32, "raw_sample_rate": 16000}


def decoded(root, clip_id):
    path = DatasetLayout(root).raw_dir / "videos" / f"{clip_id}.mp4"
    return read_video_frames(path, 8, 32), read_audio(path, 16000, 1.0)


def test_generator_is_deterministic_for_a_seed(tmp_path):
    size = SceneSize(num_frames=8, frame_size=32, sample_rate=16000, clip_seconds=1.0)
    for species, behavior in (("red_fox", "running"), ("wild_boar", "alarm")):
        first = np.random.default_rng([3, 0, 0])
        second = np.random.default_rng([3, 0, 0])
        np.testing.assert_array_equal(render_video(first, species, behavior, size), render_video(second, species, behavior, size))
        np.testing.assert_array_equal(render_audio(first, species, behavior, size), render_audio(second, species, behavior, size))

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_raw(tmp_path / name, tiny_settings(seed), num_workers=1, progress=False)
    layout_a, layout_b = DatasetLayout(tmp_path / "a"), DatasetLayout(tmp_path / "b")
    for split in SPLITS:
        pd.testing.assert_frame_equal(pd.read_csv(layout_a.metadata_csv(split)), pd.read_csv(layout_b.metadata_csv(split)))
    frames_a, audio_a = decoded(tmp_path / "a", "train_00000")
    frames_b, audio_b = decoded(tmp_path / "b", "train_00000")
    frames_c, _ = decoded(tmp_path / "c", "train_00000")
    # The scenes are bit-identical (above); x264's output for them can differ by a grey level or two
    # between encodes in one process (seen here, threads=1), which is codec noise, not another clip.
    assert (frames_a.float() - frames_b.float()).abs().mean() < 3
    np.testing.assert_allclose(audio_a, audio_b, atol=1e-6)
    assert (frames_a.float() - frames_c.float()).abs().mean() > 10, "another seed should give other clips"


def test_every_label_pair_appears_in_every_split(synthetic_root):
    layout = DatasetLayout(synthetic_root)
    for split in SPLITS:
        table = pd.read_csv(layout.metadata_csv(split))
        assert set(zip(table.species, table.behavior)) == set(itertools.product(SPECIES, BEHAVIORS))


def test_processed_files_are_what_preprocessing_the_raw_clips_gives(synthetic_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root / "raw", copy / "raw")
    cfg = compose_config([f"data.root={copy}", *TINY_SPLITS.split()])
    summary = preprocess_from_config(cfg.data, num_workers=1, progress=False)
    assert not summary.failed and summary.ok == 80
    original, again = DatasetLayout(synthetic_root), DatasetLayout(copy)
    for clip_id in pd.read_csv(original.metadata_csv("val")).clip_id:
        assert torch.equal(torch.load(original.video_frames(clip_id), weights_only=True),
                           torch.load(again.video_frames(clip_id), weights_only=True))
        np.testing.assert_array_equal(np.load(original.mel_spectrogram(clip_id)), np.load(again.mel_spectrogram(clip_id)))


def test_ensure_reuses_a_finished_dataset_and_regenerates_on_new_settings(synthetic_root, tmp_path):
    cfg = compose_config([f"data.root={synthetic_root}", *TINY_SPLITS.split()])
    marker = DatasetLayout(synthetic_root).raw_dir / SETTINGS_FILE
    stamp = marker.stat().st_mtime_ns
    ensure_synthetic_dataset(cfg.data, num_workers=1, progress=False)
    assert marker.stat().st_mtime_ns == stamp, "an up-to-date dataset was regenerated"

    small = tmp_path / "small"
    overrides = [f"data.root={small}", "data.clips_per_split.train=4", "data.clips_per_split.val=2",
                 "data.clips_per_split.test=2"]
    ensure_synthetic_dataset(compose_config(overrides).data, num_workers=1, progress=False)
    changed = compose_config([*overrides, "data.seed=9"]).data
    ensure_synthetic_dataset(changed, num_workers=1, progress=False)
    assert json.loads((DatasetLayout(small).raw_dir / SETTINGS_FILE).read_text()) == generator_settings(changed)
    assert len(pd.read_csv(DatasetLayout(small).manifest)) == 8


def test_a_share_of_clips_is_written_without_audio_with_the_same_videos(synthetic_root, synthetic_missing_audio_root):
    full, partial = DatasetLayout(synthetic_root), DatasetLayout(synthetic_missing_audio_root)
    manifest = pd.read_csv(partial.manifest, dtype=str, keep_default_na=False)
    for split, count in (("train", 40), ("val", 20), ("test", 20)):
        rows = manifest[manifest["split"] == split]
        assert (rows["status"] == "no_audio").sum() == count // 4, split
        assert set(rows.loc[rows["status"] == "no_audio", "has_audio"]) == {"false"}
    assert pd.read_csv(partial.metadata_csv("test")).equals(pd.read_csv(full.metadata_csv("test")))  # same labels
    silent = manifest.loc[manifest["status"] == "no_audio", "clip_id"].iloc[0]
    frames_full = torch.load(full.video_frames(silent), weights_only=True).float()
    frames_partial = torch.load(partial.video_frames(silent), weights_only=True).float()
    assert (frames_full - frames_partial).abs().mean() < 3  # the same scene (codec noise aside)
    assert np.load(partial.mel_spectrogram(silent)).std() == 0 and np.load(full.mel_spectrogram(silent)).std() > 1


def test_the_share_names_its_own_dataset_folder():
    assert compose_config().data.root.endswith("/data/synthetic/seed_0")
    assert compose_config(["data.seed=1", "data.missing_audio=0.3"]).data.root.endswith("/seed_1_missing_audio_30")
    with pytest.raises(Exception, match="data.missing_audio=1.5 must be a share in"):
        from mmbehave.data.synthetic.generator import clips_without_audio

        clips_without_audio({"seed": 0, "missing_audio": 1.5}, 0, 10)
