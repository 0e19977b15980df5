"""`python -m mmbehave.pretrain`: in-domain self-supervised pretraining (VideoMAE's masked autoencoding and a
picture-sound contrastive objective), its outputs loaded as pretrained weights, and the label shares that measure
what it saves (data.label_fraction / data.labels_per_class)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import TINY_SPLITS, run_here, train_here, user_error
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.core.errors import ConfigError
from mmbehave.data.splits.label_subset import LabelShare, label_subset
from mmbehave.domain.heads import HeadSpec
from mmbehave.models.audio_encoders import build_resnet18_audio_encoder
from mmbehave.models.video_encoders import build_videomae_encoder
from mmbehave.pretraining.masking import tube_mask
from mmbehave.pretraining.objectives import info_nce

pytestmark = pytest.mark.slow

HEADS = (HeadSpec("species", "species"), HeadSpec("behavior", "behavior"))


def test_a_tube_mask_hides_the_same_patches_in_every_frame_and_as_many_in_every_clip():
    mask = tube_mask(5, (4, 3, 3), 0.9, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 36) and mask.dtype == torch.bool
    per_step = mask.reshape(5, 4, 9)
    assert (per_step == per_step[:, :1]).all()                 # a tube: the same positions at every time step
    assert per_step[:, 0].sum(dim=1).tolist() == [8] * 5      # round(0.9 * 9) hidden, one shown, in each clip
    assert not (mask[0] == mask[1]).all()                     # drawn per clip


def test_infonce_is_low_only_when_each_picture_is_paired_with_its_own_sound():
    torch.manual_seed(0)
    video = torch.randn(8, 16)
    paired, paired_top1 = info_nce(video, video + 0.01 * torch.randn(8, 16), 0.07)
    shuffled, shuffled_top1 = info_nce(video, video.roll(1, dims=0), 0.07)
    assert paired_top1 == 1.0 and shuffled_top1 == 0.0
    assert paired.item() < 0.1 < shuffled.item()


def field_table() -> pd.DataFrame:
    rows = []
    for event in range(30):
        species = ["badger", "red_fox", "wild_boar"][event % 3]
        behavior = "alarm" if event in (4, 11) else ("resting" if event % 4 == 0 else "walking")
        rows += [{"clip_id": f"c{event:02d}_{i}", "species": species, "behavior": behavior,
                  "event_id": f"E{event:02d}"} for i in range(3)]
    return pd.DataFrame(rows)


def test_a_label_share_keeps_every_class_and_whole_events_and_is_the_same_for_the_same_seed():
    table = field_table()
    share = label_subset(table, HEADS, LabelShare(fraction=0.1), "train.csv")
    assert len(share) < len(table) / 2
    for head in HEADS:  # every class keeps at least one event, the rare alarm included
        assert set(share[head.column]) == set(table[head.column])
    assert (share.groupby("event_id").size() == 3).all()          # events whole: their clips are near-duplicates
    assert share.equals(label_subset(table, HEADS, LabelShare(fraction=0.1), "train.csv"))
    assert not share.equals(label_subset(table, HEADS, LabelShare(fraction=0.1, seed=1), "train.csv"))
    per_class = label_subset(table, HEADS, LabelShare(per_class=6), "train.csv")
    assert per_class["species"].value_counts().min() >= 6 and per_class["behavior"].value_counts().min() >= 6
    assert label_subset(table, HEADS, LabelShare(fraction=1.0), "train.csv").equals(table)
    assert label_subset(table, HEADS, LabelShare(), "train.csv") is table


def test_a_label_share_that_cannot_work_is_one_line_naming_the_key():
    assert "data.label_fraction=0" in user_error(lambda: LabelShare.from_config({"label_fraction": 0}))
    assert "both set" in user_error(lambda: LabelShare.from_config({"label_fraction": 0.5, "labels_per_class": 3}))
    assert "data.labels_per_class=0" in user_error(lambda: LabelShare.from_config({"labels_per_class": 0}))
    assert "data.label_unit=site" in user_error(lambda: label_subset(field_table(), HEADS,
                                                                     LabelShare(0.5, unit="site"), "train.csv"))


def pretrain(tmp_path, root, *overrides, run="pretrain"):
    return run_here("pretrain", f"data.root={root}", *TINY_SPLITS.split(), "pretrain.batch_size=8",
                    f"pretrain.cache_dir={tmp_path / 'clips'}", *overrides, tmp_path=tmp_path, run=run)


def masked_losses(tmp_path) -> list[float]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])[0]
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, "pretrain/masked_loss"),
                                    key=lambda m: m.step)]


def test_pretrained_encoders_load_as_pretrained_weights_and_train_starts_from_them(synthetic_root, tmp_path):
    out = pretrain(tmp_path, synthetic_root, "pretrain.num_epochs=2").value
    video_dir, audio_file = out / "video", out / "audio_resnet18.pth"
    latest = torch.load(out.parent / "checkpoints" / "latest.pth", weights_only=True)["model"]
    # loaded the way pretrained weights load today: the same tensors as the pretrained encoders
    video = build_videomae_encoder(str(video_dir), pretrained=True, freeze_backbone=False, on_load_failure="raise",
                                   num_frames=8, image_size=32)
    for name, tensor in video.backbone.state_dict().items():
        assert torch.equal(tensor, latest[f"video_encoder.backbone.{name}"]), name
    audio = build_resnet18_audio_encoder(pretrained=True, freeze_backbone=False, on_load_failure="raise",
                                         weights_path=str(audio_file))
    for name, tensor in audio.backbone.state_dict().items():
        assert torch.allclose(tensor.float(), latest[f"audio_encoder.backbone.{name}"].float(), atol=1e-6), name
    # fine-tuning at a vanishing learning rate: best.pth's encoders are the pretrained ones, not re-initialised
    train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), "optimizer.lr=1e-30",
               "training.lr_schedule.warmup_epochs=0", "data.label_fraction=0.5",
               "video_encoder.pretrained=true", f"video_encoder.model_name={video_dir}",
               "audio_encoder.pretrained=true", f"audio_encoder.weights_path={audio_file}", run="finetune")
    best = read_checkpoint(tmp_path / "finetune" / "checkpoints" / "best.pth")
    for name, tensor in best["model"].items():
        if name.startswith("video_encoder.backbone.") or (name.startswith("audio_encoder.") and "bn" not in name
                                                          and "downsample.1" not in name):
            assert torch.allclose(tensor, latest[name], atol=1e-6), name
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    pretrained_run = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])[0]
    finetune = client.get_run(best["mlflow_run_id"])
    assert finetune.data.tags["pretrained.video_encoder_sha256"] == pretrained_run.data.tags["pretrained.video_sha256"]
    assert finetune.data.tags["pretrained.audio_encoder_sha256"] == pretrained_run.data.tags["pretrained.audio_sha256"]
    assert int(finetune.data.params["train_clips"]) < 40             # data.label_fraction=0.5 of 40 training clips
    assert pretrained_run.data.params["pretrain/clips"] == "80"      # every split's clips, labels never read
    assert "InfoNCE" in pretrained_run.data.params["pretrain/objective"]


def test_the_masked_loss_falls_and_a_stopped_run_resumes_into_the_same_mlflow_run(synthetic_root, tmp_path):
    first = pretrain(tmp_path, synthetic_root, "audio_encoder=none", "pretrain.num_epochs=8",
                     "pretrain.stop_after_epoch=3")
    assert "continue with: python -m mmbehave.pretrain resume=" in first.output
    latest = tmp_path / "pretrain" / "checkpoints" / "latest.pth"
    assert not (tmp_path / "pretrain" / "pretrained").exists()    # nothing written as if the run had finished
    assert "other settings" in user_error(lambda: pretrain(tmp_path, synthetic_root, "audio_encoder=none",
                                                           "pretrain.num_epochs=8", "pretrain.mask_ratio=0.75",
                                                           f"resume={latest}", run="other"))
    pretrain(tmp_path, synthetic_root, "audio_encoder=none", "pretrain.num_epochs=8", f"resume={latest}", run="again")
    losses = masked_losses(tmp_path)
    assert len(losses) == 8                                        # one MLflow run, every epoch once
    assert min(losses[-2:]) < losses[0] - 0.02, losses             # the masked objective learns on the built-in clips
    assert (tmp_path / "pretrain" / "pretrained" / "video" / "model.safetensors").is_file()
    assert not (tmp_path / "pretrain" / "pretrained" / "audio_resnet18.pth").exists()  # audio_encoder=none


def test_clips_from_a_folder_with_an_unreadable_file_are_listed_and_left_out(synthetic_root, tmp_path):
    folder = tmp_path / "archive" / "site_a"
    folder.mkdir(parents=True)
    for clip in sorted((synthetic_root / "raw").rglob("*.mp4"))[:6]:
        shutil.copy(clip, folder / clip.name)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    out = pretrain(tmp_path, synthetic_root, f"input={tmp_path / 'archive'}", "pretrain.num_epochs=1",
                   "pretrain.batch_size=4").value
    errors = pd.read_csv(out.parent / "unreadable_clips.csv")
    assert [p.endswith("broken.mp4") for p in errors["path"]] == [True]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])[0]
    assert run.data.params["pretrain/clips"] == "6" and run.data.params["pretrain/clips_unreadable"] == "1"


@pytest.mark.parametrize("override, named", [
    ("video_encoder=cnn3d", "cnn3d has no patches to hide"),
    ("pretrain.mask_ratio=1.0", "pretrain.mask_ratio=1.0"),
    ("pretrain.batch_size=1", "pretrain.batch_size=1"),
    ("pretrain.splits=[training]", "pretrain.splits=['training']"),
    ("video_encoder=none", "video_encoder=none"),
])
def test_settings_that_cannot_work_are_one_line_before_any_clip_is_read(synthetic_root, tmp_path, override, named):
    assert named in user_error(lambda: pretrain(tmp_path, synthetic_root, override, "pretrain.num_epochs=1"))
    assert not (tmp_path / "pretrain" / "checkpoints").exists()
    assert not (tmp_path / "clips").exists()                      # nothing decoded


def test_a_training_checkpoint_is_not_resumed_as_a_pretraining(synthetic_root, tmp_path, trained_run):
    message = user_error(lambda: pretrain(tmp_path, synthetic_root, f"resume={trained_run.checkpoint}"))
    assert "not a pretrain checkpoint" in message
    with pytest.raises(ConfigError):
        LabelShare.from_config({"label_fraction": 1.5})


def test_how_the_encoders_start_is_a_config_group_a_study_sweeps():
    from helpers import compose_config, compose_with_hydra
    from omegaconf import OmegaConf

    from mmbehave.core.cli import run_with_resolver_errors

    frozen = compose_config(["encoder_init=frozen", "pretrained_from=/runs/p/pretrained"])
    assert (frozen.video_encoder.pretrained, frozen.video_encoder.freeze_backbone, frozen.audio_encoder.freeze_backbone,
            frozen.training.feature_cache) == (True, True, True, True)
    assert frozen.video_encoder.model_name == "/runs/p/pretrained/video"
    assert frozen.audio_encoder.weights_path == "/runs/p/pretrained/audio_resnet18.pth"
    tuned = compose_config(["encoder_init=pretrained", "pretrained_from=/runs/p/pretrained"])
    assert tuned.video_encoder.pretrained and not tuned.video_encoder.freeze_backbone
    assert not compose_config(["encoder_init=scratch"]).video_encoder.pretrained
    # pretrained without saying from where: one line naming the key, not a folder named "None"
    unresolved = compose_config(["encoder_init=pretrained"]).video_encoder
    assert "needs pretrained_from=" in user_error(  # as every command's wrapper shows it
        lambda: run_with_resolver_errors(lambda: OmegaConf.to_container(unresolved, resolve=True)))
    study = compose_with_hydra("hparams_search=pretrained", "pretrained_from=/runs/p/pretrained").hydra.sweeper
    assert study.params["encoder_init"] == "choice(scratch, pretrained, frozen)" and study.study_name == "pretrained"


def test_the_benchmark_row_says_whether_pretraining_lifted_the_score_beyond_the_folds_spread(tmp_path):
    from mmbehave.perf.benchmark_table import markdown
    from mmbehave.perf.pretraining_rows import summarise

    def runs(*scores):
        return [{"test_macro_f1": s, "rare_macro_f1": s / 2, "train_clips": 50} for s in scores]

    fractions = [0.1, 1.0]
    scores = {"scratch": {0.1: runs(0.30, 0.32, 0.34), 1.0: runs(0.60, 0.62, 0.64)},
              "archive": {0.1: runs(0.50, 0.52, 0.54), 1.0: runs(0.61, 0.63, 0.62)},
              "training_sites": {0.1: runs(0.20, 0.40, 0.36), 1.0: runs(0.58, 0.62, 0.66)}}
    pretraining = {"seconds_per_1000_clips_epoch": 15.0}
    result = summarise(tmp_path, fractions, scores, pretraining, [pretraining], folds=3)
    assert result["lift_beyond_spread"]["archive"] == [True, False]   # +0.20 against spreads of 0.016 + 0.016
    assert result["lift_beyond_spread"]["training_sites"] == [False, False]
    assert result["ratio"] == pytest.approx(0.52 / 0.32)
    assert (tmp_path / "summary.json").is_file() and Path(result["figure"]).is_file()
    text = markdown({"pretraining": result})
    assert "0.520 ± 0.016" in text and "10% of the labels" in text and "15.0 s per 1,000 clips" in text
