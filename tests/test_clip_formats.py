"""Every readable clip, every time: the formats camera traps and phones write decode in the preprocessing
worker pool, over and over, to the same tensors (``mmbehave/data/clip_io.py``)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from media import FIELD_FORMATS, write_media

from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.layout import DatasetLayout
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
