"""Every readable clip, every time: the formats camera traps and phones write (a decade of models: AVI with
MPEG-4 part 2 and dropped frames, ASF / WMV, MTS, M2TS, 3GP, MPG, MKV, M4V, H.264 with B-frames) are found,
decode in the preprocessing worker pool over and over to the same tensors, and the reader's shortcut (only the
sampled frames' decode path) gives the frames a full decode gives (``mmbehave/data/clip_reader.py``)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from media import CAMERA_FORMATS, FIELD_FORMATS, write_media

from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.clip_reader import read_clip
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.media_files import find_media
from mmbehave.data.preprocessing import preprocess_dataset

COPIES = 4  # byte-identical copies of each file, decoded in different worker processes and orders
SETTINGS = PreprocessSettings(num_frames=8, image_size=32, frame_window=None, sample_rate=16000, clip_seconds=1.0,
                              n_mels=32, n_fft=512, hop_length=320)


@pytest.fixture(scope="module")
def field_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("field_formats")
    layout = DatasetLayout(root)
    rows = []
    for fmt in FIELD_FORMATS:
        original = write_media(layout.raw_dir / "videos" / fmt.name, fmt)
        for copy in range(COPIES):
            target = original.with_name(f"{fmt.name}_{copy}{fmt.suffix}")
            target.write_bytes(original.read_bytes())
            rows.append({"clip_id": f"{fmt.name}_{copy}", "species": "fox", "behavior": "walking",
                         "video_path": str(target.relative_to(layout.raw_dir))})
    layout.metadata_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(layout.metadata_csv("train"), index=False)
    return layout


def processed(layout: DatasetLayout, clip_id: str) -> tuple[torch.Tensor, np.ndarray]:
    return torch.load(layout.video_frames(clip_id), weights_only=True), np.load(layout.mel_spectrogram(clip_id))


@pytest.mark.slow
def test_each_field_format_decodes_every_time_in_the_worker_pool(field_dataset):
    layout = field_dataset
    runs = []
    for _ in range(2):  # a fresh pass over every file: nothing may depend on what ran before
        shutil.rmtree(layout.processed_dir, ignore_errors=True)
        summary = preprocess_dataset(layout.root, SETTINGS, num_workers=2, progress=False, splits=("train",))
        assert not summary.failed, summary.format()
        runs.append({f"{fmt.name}_{copy}": processed(layout, f"{fmt.name}_{copy}")
                     for fmt in FIELD_FORMATS for copy in range(COPIES)})
    manifest = pd.read_csv(layout.manifest, dtype=str, keep_default_na=False).set_index("clip_id")
    for fmt in FIELD_FORMATS:
        expected_status = "ok" if fmt.audio_codec else "no_audio"
        first_frames, first_mel = runs[0][f"{fmt.name}_0"]
        assert first_frames.shape == (8, 3, 32, 32) and first_frames.float().std() > 0, fmt.name
        for run in runs:
            for copy in range(COPIES):
                clip_id = f"{fmt.name}_{copy}"
                assert manifest.at[clip_id, "status"] == expected_status, clip_id
                frames, mel = run[clip_id]
                assert torch.equal(frames, first_frames), f"{clip_id} decoded differently"
                np.testing.assert_array_equal(mel, first_mel, err_msg=clip_id)


@pytest.fixture(scope="module")
def camera_folder(tmp_path_factory):
    """One file of each old and odd container a camera archive holds, in folders with spaces and non-ASCII
    names, beside files that are not clips."""
    folder = tmp_path_factory.mktemp("archive") / "Site Ålvdal" / "2019 cam 3"
    files = {fmt.name: write_media(folder / fmt.name, fmt) for fmt in CAMERA_FORMATS}
    (folder / "notes.txt").write_text("batteries changed\n")
    (folder / "IMG_0001.JPG").write_bytes(b"\xff\xd8 not really a photo")
    (folder / "._IMG_0002.MP4").write_bytes(b"macOS resource fork")
    return folder, files


def test_the_folder_search_finds_every_camera_container_and_names_what_it_leaves(camera_folder):
    folder, files = camera_folder
    search = find_media(folder.parent.parent)
    assert search.files == sorted(files.values())
    assert dict(search.skipped) == {".txt": 1, ".jpg": 1}
    assert sorted(search.skipped_text().split(", ")) == ["1 .jpg", "1 .txt"]


@pytest.mark.parametrize("fmt", CAMERA_FORMATS, ids=lambda fmt: fmt.name)
def test_every_camera_container_is_read_whole_and_skipping_changes_no_frame(camera_folder, fmt):
    path = camera_folder[1][fmt.name]
    windows = [None, (0.2, 0.8)]
    fast = read_clip(path, num_frames=8, image_size=32, windows=windows, sample_rate=16000, clip_seconds=1.0)
    full = read_clip(path, num_frames=8, image_size=32, windows=windows, sample_rate=16000, clip_seconds=1.0,
                     skip_unneeded=False)
    assert fast.has_video and len(fast.frames) == 2 and fast.frames[0].float().std() > 0
    for shortcut, decoded in zip(fast.frames, full.frames):
        assert torch.equal(shortcut, decoded)
    assert (fast.waveform is not None) == bool(fmt.audio_codec)
    if fmt.audio_codec:
        np.testing.assert_array_equal(fast.waveform, full.waveform)


def test_a_dropped_frame_the_header_counts_is_no_truncation(camera_folder):
    import av

    path = camera_folder[1]["avi_mpeg4_dropped_frames"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        with_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
        declared = stream.frames
    assert declared > with_frames  # what made the old check call the whole file "truncated"
    assert read_clip(path, num_frames=16, image_size=32).frames[0].shape == (16, 3, 32, 32)
