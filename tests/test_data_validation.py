"""Bad input stops a run before training, with a message naming the file, the row and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import default_heads
from omegaconf import OmegaConf

from mmbehave.core.errors import DataError
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.prepared import prepare_data
from mmbehave.data.settings import DataSettings

HEADS = default_heads()

SHAPE = dict(num_frames=4, image_size=16, n_mels=8)
BOTH = ("video", "audio")


def make_processed_dataset(root: Path, rows_per_split: int = 4) -> DatasetLayout:
    """A minimal valid dataset in the seed's processed layout (no raw clips needed)."""
    layout = DatasetLayout(root)
    layout.metadata_dir.mkdir(parents=True)
    (layout.processed_dir / "video_frames").mkdir(parents=True)
    (layout.processed_dir / "mel_spectrograms").mkdir(parents=True)
    labels = [("fox", "walk"), ("deer", "rest")]
    for split in ("train", "val", "test"):
        ids = [f"{split}{i}" for i in range(rows_per_split)]
        table = pd.DataFrame({"clip_id": ids, "species": [labels[i % 2][0] for i in range(rows_per_split)],
                              "behavior": [labels[i % 2][1] for i in range(rows_per_split)]})
        table.to_csv(layout.metadata_csv(split), index=False)
        for clip_id in ids:
            torch.save(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), layout.video_frames(clip_id))
            np.save(layout.mel_spectrogram(clip_id), np.zeros((8, 11), dtype=np.float32))
    return layout


def data_cfg(root: Path):
    return OmegaConf.create({"root": str(root), "prepare": None, **SHAPE, "frame_window": None, "sample_rate": 16000,
                             "clip_seconds": 1.0, "n_fft": 512, "hop_length": 320})


def data_settings(root: Path) -> DataSettings:
    return DataSettings.from_config(data_cfg(root))


@pytest.fixture
def layout(tmp_path) -> DatasetLayout:
    return make_processed_dataset(tmp_path / "ds")


def expect_error(layout: DatasetLayout, *fragments: str, modalities=BOTH) -> str:
    with pytest.raises(DataError) as info:
        prepare_data(data_settings(layout.root), modalities, heads=HEADS)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    return message


def test_valid_dataset_prepares_with_sorted_class_lists(layout):
    prepared = prepare_data(data_settings(layout.root), BOTH, heads=HEADS)
    assert prepared.classes["species"] == ["deer", "fox"]
    assert prepared.classes["behavior"] == ["rest", "walk"]


def test_missing_metadata_file(layout):
    layout.metadata_csv("val").unlink()
    expect_error(layout, "val.csv", "not found")


def test_missing_column(layout):
    table = pd.read_csv(layout.metadata_csv("train")).drop(columns=["behavior"])
    table.to_csv(layout.metadata_csv("train"), index=False)
    expect_error(layout, "train.csv", "missing column(s) behavior")


def test_empty_split(layout):
    pd.DataFrame(columns=["clip_id", "species", "behavior"]).to_csv(layout.metadata_csv("val"), index=False)
    expect_error(layout, "val.csv", "empty")


def test_label_in_val_never_seen_in_train(layout):
    table = pd.read_csv(layout.metadata_csv("val"))
    table.loc[2, "species"] = "lynx"
    table.to_csv(layout.metadata_csv("val"), index=False)
    expect_error(layout, "val.csv, row 4", "species 'lynx'", "train.csv")


def test_missing_video_file(layout):
    layout.video_frames("train1").unlink()
    expect_error(layout, "train1.pt", "missing video frames", "train.csv, row 3")


def test_missing_video_file_is_fine_for_an_audio_only_model(layout):
    layout.video_frames("train1").unlink()
    prepare_data(data_settings(layout.root), ("audio",), heads=HEADS)


def test_unreadable_tensor(layout):
    layout.video_frames("val0").write_bytes(b"this is not a torch file")
    expect_error(layout, "val0.pt", "unreadable tensor", "val.csv, row 2")


def test_wrong_video_shape(layout):
    torch.save(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), layout.video_frames("train2"))
    expect_error(layout, "train2.pt", "shape (4, 3, 8, 8)", "(4, 3, 16, 16)", "data.image_size")


def test_wrong_video_dtype(layout):
    torch.save(torch.zeros(4, 3, 16, 16), layout.video_frames("train3"))
    expect_error(layout, "train3.pt", "dtype torch.float32", "uint8")


def test_wrong_mel_shape_and_dtype(layout):
    np.save(layout.mel_spectrogram("test0"), np.zeros((5, 11), dtype=np.float32))
    expect_error(layout, "test0.npy", "n_mels=8")
    np.save(layout.mel_spectrogram("test0"), np.zeros((8, 11), dtype=np.int64))
    expect_error(layout, "test0.npy", "dtype int64")


def test_mel_length_differs_between_clips(layout):
    np.save(layout.mel_spectrogram("train3"), np.zeros((8, 12), dtype=np.float32))
    expect_error(layout, "train3.npy", "12 time frames", "11")


def test_duplicate_clip_id(layout):
    table = pd.read_csv(layout.metadata_csv("train"))
    table.loc[3, "clip_id"] = "train0"
    table.to_csv(layout.metadata_csv("train"), index=False)
    expect_error(layout, "train.csv, row 5", "'train0' appears twice")


def test_clip_that_failed_preprocessing(layout):
    pd.DataFrame({"clip_id": ["train0"], "status": ["failed: truncated file"], "has_audio": ["false"]}).to_csv(
        layout.manifest, index=False)
    expect_error(layout, "train.csv, row 2", "failed", "truncated file")


def test_training_reads_every_label_table_but_checks_only_its_splits_files(layout):
    layout.video_frames("test0").unlink()  # training does not need the test clips...
    prepared = prepare_data(data_settings(layout.root), BOTH, heads=HEADS, splits=("train", "val"))
    assert set(prepared.tables) == {"train", "val", "test"}
    table = pd.read_csv(layout.metadata_csv("test"))
    table.loc[0, "behavior"] = "dig"
    table.to_csv(layout.metadata_csv("test"), index=False)
    with pytest.raises(DataError, match=r"test.csv, row 2: behavior 'dig'"):  # ...but their labels must be known
        prepare_data(data_settings(layout.root), BOTH, heads=HEADS, splits=("train", "val"))


# ---- hand-typed tables: training is as strict as preprocessing ---------------------------------------------

def edit_table(layout: DatasetLayout, split: str, row: int, **values) -> None:
    table = pd.read_csv(layout.metadata_csv(split), dtype=str, keep_default_na=False)
    for column, value in values.items():
        table.loc[row, column] = value
    table.to_csv(layout.metadata_csv(split), index=False)


def test_a_clip_in_two_splits_is_leakage_naming_both_rows(layout):
    edit_table(layout, "val", 1, clip_id="train2")
    expect_error(layout, "'train2'", "train.csv, row 4", "val.csv, row 3", "one split only")


@pytest.mark.parametrize("clip_id", ["../../escaped", "/tmp/absolute"])
def test_a_clip_id_that_escapes_processed_is_refused(layout, clip_id):
    edit_table(layout, "train", 0, clip_id=clip_id)
    expect_error(layout, "train.csv, row 2", f"clip_id '{clip_id}' cannot be used as a file name")


def test_labels_are_stripped_and_spelling_variants_are_an_error(layout):
    edit_table(layout, "train", 0, behavior="walk ")  # surrounding whitespace: the same label
    assert prepare_data(data_settings(layout.root), BOTH, heads=HEADS).classes["behavior"] == ["rest", "walk"]
    edit_table(layout, "val", 1, species="Deer")
    edit_table(layout, "test", 1, species="DEER")
    message = expect_error(layout, "species is written 3 ways", "'deer' (train.csv row 3", "'Deer' (val.csv row 3)",
                           "'DEER' (test.csv row 3)")
    assert "\n" not in message


def test_a_head_with_one_class_in_train_is_an_error(layout):
    for split in ("train", "val", "test"):
        table = pd.read_csv(layout.metadata_csv(split))
        table["behavior"] = "walk"
        table.to_csv(layout.metadata_csv(split), index=False)
    expect_error(layout, "train.csv", "every clip has behavior 'walk'", "at least two classes")


@pytest.mark.parametrize("split, clip_id, row", [("train", "train1", 3), ("val", "val2", 4)])
def test_nan_in_a_spectrogram_is_caught_naming_file_and_row(layout, split, clip_id, row):
    mel = np.zeros((8, 11), dtype=np.float32)
    mel[3, 4] = np.nan
    mel[5, 6] = np.inf
    np.save(layout.mel_spectrogram(clip_id), mel)
    expect_error(layout, f"{clip_id}.npy", "2 NaN or infinite value(s)", f"{split}.csv, row {row}")


def write_manifest(layout: DatasetLayout, **settings) -> None:
    made_with = {"num_frames": "4", "image_size": "16", "frame_window": "", "sample_rate": "16000",
                 "clip_seconds": "1.0", "n_mels": "8", "n_fft": "512", "hop_length": "320", **settings}
    rows = [{"clip_id": c, "status": "ok", "has_audio": "true", "fingerprint": "abc123", **made_with}
            for split in ("train", "val", "test") for c in pd.read_csv(layout.metadata_csv(split))["clip_id"]]
    pd.DataFrame(rows).to_csv(layout.manifest, index=False)


def test_the_files_settings_win_over_a_config_that_disagrees(layout):
    from mmbehave.core.errors import ConfigError

    write_manifest(layout)
    cfg = OmegaConf.merge(data_cfg(layout.root), {"n_fft": 1024, "hop_length": 160, "clip_seconds": 4.0,
                                                  "sample_rate": 16000, "frame_window": None})
    with pytest.raises(ConfigError) as info:
        prepare_data(DataSettings.from_config(cfg), BOTH, heads=HEADS)
    message = str(info.value)
    for part in ("manifest.csv", "data.n_fft=1024 (files: 512)", "data.hop_length=160 (files: 320)",
                 "data.clip_seconds=4.0 (files: 1.0)"):
        assert part in message
    assert "sample_rate" not in message and "\n" not in message
    # Agreeing settings: what checkpoints store is what the files were made with.
    agreeing = OmegaConf.merge(cfg, {"n_fft": 512, "hop_length": 320, "clip_seconds": 1.0})
    prepared = prepare_data(DataSettings.from_config(agreeing), BOTH, heads=HEADS)
    assert prepared.preprocess == {"num_frames": 4, "image_size": 16, "frame_window": None, "sample_rate": 16000,
                                   "clip_seconds": 1.0, "n_mels": 8, "n_fft": 512, "hop_length": 320}


def test_processed_files_made_with_mixed_settings_are_refused(layout):
    write_manifest(layout)
    manifest = pd.read_csv(layout.manifest, dtype=str, keep_default_na=False)
    manifest.loc[2, "fingerprint"] = "def456"
    manifest.to_csv(layout.manifest, index=False)
    expect_error(layout, "manifest.csv", "2 different settings", "abc123, def456")


def test_clips_missing_a_modality_reach_the_batches_flagged(layout):
    from mmbehave.data.dataset import collate
    from mmbehave.data.prepared import make_dataset

    write_manifest(layout)
    manifest = pd.read_csv(layout.manifest, dtype=str, keep_default_na=False)
    manifest["has_video"] = "true"
    manifest.loc[manifest["clip_id"] == "train1", ["status", "has_video"]] = ["no_video", "false"]
    manifest.loc[manifest["clip_id"] == "train2", ["status", "has_audio"]] = ["no_audio", "false"]
    manifest.to_csv(layout.manifest, index=False)
    cfg = OmegaConf.merge(data_cfg(layout.root), {"n_fft": 512, "hop_length": 320, "clip_seconds": 1.0,
                                                  "sample_rate": 16000, "frame_window": None})
    prepared = prepare_data(DataSettings.from_config(cfg), BOTH, heads=HEADS)
    dataset = make_dataset(prepared, "train", BOTH, prepared.classes)
    batch = collate([dataset[i] for i in range(4)])
    assert batch["video_present"].tolist() == [True, False, True, True]
    assert batch["audio_present"].tolist() == [True, True, False, True]


def test_files_that_passed_are_not_reread_until_they_change(layout):
    prepare_data(data_settings(layout.root), BOTH, heads=HEADS)
    assert (layout.processed_dir / ".checked.json").is_file()
    bad = np.zeros((8, 11), dtype=np.float32)
    bad[0, 0] = np.nan
    np.save(layout.mel_spectrogram("val1"), bad)  # a file changed since: checked again, and caught
    expect_error(layout, "val1.npy", "NaN")
