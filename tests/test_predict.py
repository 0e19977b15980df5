"""`python -m mmbehave.predict` on real MP4s: a folder with good, silent and broken clips, and a single file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import compose_config, run_module
from media import MediaFormat, write_media

from mmbehave.checkpoints.trained_model import load_trained_model
from mmbehave.data.clip_io import write_clip
from mmbehave.data.dataset import ClipDataset, collate
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import read_split
from mmbehave.predicting.run import run_prediction

pytestmark = pytest.mark.slow

TEST_CLIPS = ["test_00000", "test_00001", "test_00002"]


def training_view_probabilities(trained, synthetic_root, clip_ids):
    """What the model says about these test clips from the processed tensors it was evaluated on."""
    layout = DatasetLayout(synthetic_root)
    table = read_split(layout, "test", trained.heads).set_index("clip_id").loc[clip_ids].reset_index()
    dataset = ClipDataset(layout, table, heads=trained.heads, classes=trained.classes, modalities=trained.modalities,
                          mel_mean=trained.mel_mean, mel_std=trained.mel_std)
    batch = collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        output = trained.model(video=batch["video"], audio=batch["audio"], audio_present=batch["audio_present"])
    return torch.softmax(output.logits["species"], -1).numpy(), torch.softmax(output.logits["behavior"], -1).numpy()


def test_predict_folder_predicts_readable_clips_and_reports_unreadable_ones(tmp_path, trained_run, synthetic_root):
    clips = tmp_path / "field"
    (clips / "site_b").mkdir(parents=True)
    for clip_id in TEST_CLIPS[:2]:
        shutil.copy(synthetic_root / "raw" / "videos" / f"{clip_id}.mp4", clips / f"{clip_id}.mp4")
    shutil.copy(synthetic_root / "raw" / "videos" / f"{TEST_CLIPS[2]}.mp4", clips / "site_b" / f"{TEST_CLIPS[2]}.MP4")
    frames = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    write_clip(clips / "site_b" / "silent.mp4", frames, fps=16)  # no audio track
    write_media(clips / "site_b" / "recorder", MediaFormat("wav", ".wav", video_codec=None, audio_codec="pcm_s16le",
                                                          audio_format="s16"))  # an acoustic recorder: no video
    (clips / "broken.mp4").write_bytes(b"not a video at all")
    (clips / "notes.txt").write_text("not a clip, not looked at")
    output = tmp_path / "out" / "predictions.csv"

    result = run_module("mmbehave.predict", f"checkpoint={trained_run.checkpoint}", f"input={clips}",
                        f"output={output}", "top_k=2", f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path)
    assert f"{clips / 'broken.mp4'}" in result.stderr and "could not be read" in result.stderr
    assert "Predicted 5 clip(s)" in result.stdout

    table = pd.read_csv(output, keep_default_na=False)
    assert sorted(table["clip_id"]) == sorted([*TEST_CLIPS, "silent", "recorder"])
    assert list(table.columns) == ["path", "clip_id", "has_video", "has_audio", "species", "species_prob", "behavior",
                                   "behavior_prob", "species_top2", "behavior_top2", "warning", "model_run_id",
                                   "model_sha256"]  # columns=narrow: today's, then which model made them
    by_clip = table.set_index("clip_id")
    assert not by_clip.loc["silent", "has_audio"] and by_clip.loc["silent", "has_video"]
    assert not by_clip.loc["recorder", "has_video"] and by_clip.loc["recorder", "has_audio"]
    assert (table["warning"] == "").all()  # a video+audio model has something to go on for every clip
    first, second = table.loc[0, "species_top2"].split("|")
    assert first.split(":")[0] == table.loc[0, "species"] and float(second.split(":")[1]) <= table.loc[0, "species_prob"]

    # Raw MP4 -> predict gives what the processed tensors of training and evaluation give: same preprocessing.
    trained = load_trained_model(trained_run.checkpoint)
    species, behaviors = training_view_probabilities(trained, synthetic_root, TEST_CLIPS)
    rows = table.set_index("clip_id").loc[TEST_CLIPS]
    assert rows["species"].tolist() == [trained.classes["species"][i] for i in species.argmax(1)]
    assert rows["behavior"].tolist() == [trained.classes["behavior"][i] for i in behaviors.argmax(1)]
    np.testing.assert_allclose(rows["species_prob"], species.max(1), atol=2e-4)


def test_predict_a_single_file_and_a_folder_of_only_unreadable_clips(tmp_path, trained_run, synthetic_root):
    single = synthetic_root / "raw" / "videos" / f"{TEST_CLIPS[0]}.mp4"
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={single}", f"output={tmp_path / 'one.csv'}"],
                         config_name="predict")
    output, rows, failures = run_prediction(cfg)
    assert output == tmp_path / "one.csv" and len(rows) == 1 and not failures
    assert pd.read_csv(output)["path"].tolist() == [str(single)]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.mp4").write_bytes(b"\x00" * 100)
    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={broken}", f"output={tmp_path / 'none.csv'}"],
                         config_name="predict")
    output, rows, failures = run_prediction(cfg)
    assert output is None and not (tmp_path / "none.csv").exists()
    assert [path.name for path, _ in failures] == ["a.mp4"]


def test_a_clip_without_any_of_the_models_modalities_is_marked():
    from mmbehave.predicting.outputs import missing_input_warning
    from mmbehave.predicting.tables import ClipPrediction

    silent = ClipPrediction(Path("a.mp4"), has_video=True, has_audio=False)
    assert missing_input_warning(silent, ("audio",)) == "no audio: this audio model answers from its biases alone"
    assert missing_input_warning(silent, ("video", "audio")) == ""
    recording = ClipPrediction(Path("b.wav"), has_video=False, has_audio=True)
    assert "no video: this video model" in missing_input_warning(recording, ("video",))
