"""Heads from config (``model.heads``): any number, single- or multi-label, through data checks, training,
checkpoints (with the multi heads' validation thresholds), evaluate and predict; and checkpoints written before
heads were configurable still load. (Training, evaluate and predict run in this process on composed configs.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import compose_config, default_heads, run_here, train_here
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from sklearn.metrics import average_precision_score, f1_score

from mmbehave.checkpoints.trained_model import load_trained_model
from mmbehave.core.errors import CheckpointError, ConfigError, DataError
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import class_lists, read_metadata
from mmbehave.data.synthetic.generator import ensure_synthetic_dataset
from mmbehave.domain.heads import HeadSpec, head_specs
from mmbehave.metrics.class_scores import best_f1_thresholds

SMALL_FIELD = ["data.clips_per_split.train=40", "data.clips_per_split.val=16", "data.clips_per_split.test=16",
               "data.raw_frame_size=32", "data.fps=8", "data.raw_sample_rate=16000"]


@pytest.mark.parametrize("heads, says", [
    ({"behavior": {"type": "multiple"}}, "model.heads.behavior.type=multiple: a head is 'single'"),
    ({"action": {"type": "multi", "separator": ""}}, "model.heads.action.separator is empty"),
    ({"species": {"colum": "species"}}, "model.heads.species.colum: unknown setting"),
    ({"species": {"loss_weight": -1}}, "model.heads.species.loss_weight=-1.0 must be >= 0"),
    ({"species": None}, "model.heads lists no head"),
])
def test_a_head_config_that_cannot_work_is_one_line_naming_the_key(heads, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        head_specs(heads)


def test_a_head_is_removed_with_null_and_its_column_defaults_to_its_name():
    assert head_specs({"species": {}, "behavior": None}) == (HeadSpec("species", "species"),)
    assert HeadSpec("a", "a", "multi", separator=";").cell_labels(" walk; call ;walk;") == ["walk", "call"]


def write_tables(root, rows: dict[str, list[tuple[str, str, str]]]) -> DatasetLayout:
    layout = DatasetLayout(root)
    layout.metadata_dir.mkdir(parents=True)
    for split, entries in rows.items():
        pd.DataFrame(entries, columns=["clip_id", "species", "action"]).to_csv(layout.metadata_csv(split), index=False)
    return layout


def test_multi_label_cells_count_for_each_label_and_a_single_head_refuses_them(tmp_path):
    layout = write_tables(tmp_path, {
        "train": [("a", "fox", "walking|vocalizing"), ("b", "deer", "standing")],
        "val": [("c", "fox", "walking")], "test": [("d", "deer", "vocalizing|standing")]})
    heads = (HeadSpec("species", "species"), HeadSpec("action", "action", "multi"))
    assert class_lists(read_metadata(layout, heads=heads), heads).to_dict() == {
        "species": ["deer", "fox"], "action": ["standing", "vocalizing", "walking"]}
    with pytest.raises(DataError, match=r"train.csv, row 2: action 'walking\|vocalizing' looks like several labels, "
                                        r"but head action is single-label.*model.heads.action.type=multi"):
        read_metadata(layout, heads=(HeadSpec("action", "action"),))
    with pytest.raises(DataError, match="missing column.*behavior"):  # the guide's heads on this table
        read_metadata(layout, heads=default_heads())


def test_thresholds_chosen_on_validation_give_each_class_its_best_f1():
    rng = np.random.default_rng(4)
    targets = (rng.random((120, 4)) < [0.5, 0.2, 0.05, 0.0]).astype(int)
    probs = np.clip(targets * 0.3 + rng.random((120, 4)) * 0.7, 0, 1)
    thresholds = best_f1_thresholds(targets, probs)
    assert thresholds[3] == 0.5  # no positives: nothing to tune
    for column in range(3):
        ours = f1_score(targets[:, column], probs[:, column] >= thresholds[column], zero_division=0)
        every_cut = max(f1_score(targets[:, column], probs[:, column] >= t, zero_division=0)
                        for t in np.unique(probs[:, column]))
        assert ours == pytest.approx(every_cut)


@pytest.fixture(scope="module")
def field_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("field")
    ensure_synthetic_dataset(compose_config(["experiment=field", f"data.root={root}", *SMALL_FIELD]).data,
                             num_workers=2, progress=False)
    return root


@pytest.mark.slow
def test_a_multi_label_head_trains_logs_map_and_thresholds_and_evaluate_and_predict_use_them(tmp_path, field_root):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_here(tmp_path, "experiment=field", "debug=fast", f"data.root={field_root}", *SMALL_FIELD,
               "training.num_epochs=3", f"mlflow.tracking_uri={tracking}")
    best = tmp_path / "run" / "checkpoints" / "best.pth"
    trained = load_trained_model(best)
    assert [(h.name, h.type) for h in trained.heads] == [("species", "single"), ("behavior", "single"),
                                                          ("action", "multi")]
    actions = trained.classes["action"]
    assert len(trained.thresholds["action"]) == len(actions) and all(0 < t < 1 for t in trained.thresholds["action"])

    client = MlflowClient(tracking)
    run = client.search_runs([client.get_experiment_by_name("debug").experiment_id])[0]
    for key in ("val/action_macro_ap", "val/action_samples_f1", "val/action_micro_f1", "val/behavior_rare_macro_f1"):
        assert key in run.data.metrics, key
    heads_f1 = [run.data.metrics[f"val/{h}_macro_f1"] for h in ("species", "behavior", "action")]
    assert run.data.metrics["val/macro_f1"] == pytest.approx(np.mean(heads_f1))  # the last epoch's, all heads

    # evaluate: the action head's per-class AP and mAP are scikit-learn's on its own predictions table.
    out = tmp_path / "eval"
    run_here("evaluate", f"checkpoint={best}", f"output_dir={out}", "mlflow.log=false", "attention.num_clips=0",
             tmp_path=tmp_path, run="evaluate")
    per_class = pd.read_csv(out / "per_class.csv").query("head == 'action'").set_index("class")
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    truth = np.array([[name in cell.split("|") for name in actions] for cell in predictions["action_true"]])
    chosen = np.array([[name in cell.split("|") for name in actions] for cell in predictions["action_predicted"]])
    assert per_class["threshold"].tolist() == pytest.approx(trained.thresholds["action"], abs=1e-5)
    for index, name in enumerate(actions):
        assert per_class.at[name, "f1"] == pytest.approx(f1_score(truth[:, index], chosen[:, index], zero_division=0))
    summary = pd.read_csv(out / "summary.csv").set_index("head")
    assert summary.at["action", "samples_f1"] == pytest.approx(f1_score(truth, chosen, average="samples",
                                                                         zero_division=0))
    probs = predict_probs(trained, field_root, predictions["clip_id"])
    with_positives = truth.any(axis=0)
    assert summary.at["action", "macro_ap"] == pytest.approx(
        average_precision_score(truth[:, with_positives], probs[:, with_positives], average="macro"), abs=1e-4)

    # predict: per clip and per event (the tables' event_id column), the action labels at the stored thresholds.
    layout = DatasetLayout(field_root)
    events = pd.read_csv(layout.metadata_csv("test"))[["clip_id", "event_id"]]
    events.to_csv(tmp_path / "events.csv", index=False)
    run_here("predict", f"checkpoint={best}", f"input={layout.raw_dir / 'videos'}",
             f"output={tmp_path / 'predictions.csv'}", "event_by=event_id", f"event_table={tmp_path / 'events.csv'}",
             "columns=wide", tmp_path=tmp_path, run="predict")
    clips = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False).set_index("clip_id")
    for row, clip_id in enumerate(predictions["clip_id"]):
        above = [name for name, p, t in zip(actions, probs[row], trained.thresholds["action"]) if p >= t]
        assert clips.at[clip_id, "action"] == "|".join(above)
        assert clips.at[clip_id, f"p(action={actions[0]})"] == pytest.approx(probs[row, 0], abs=1e-4)
    table = pd.read_csv(tmp_path / "predictions_events.csv", keep_default_na=False)
    assert set(events["event_id"]) <= set(table["event_id"]) and "action" in table.columns


def predict_probs(trained, root, clip_ids) -> np.ndarray:
    """The action head's sigmoid probabilities for these test clips, straight from the model."""
    from mmbehave.data.dataset import collate
    from mmbehave.data.prepared import split_dataset
    from mmbehave.training.loop import model_inputs

    dataset = split_dataset(trained, "test", str(root))
    position = {clip_id: i for i, clip_id in enumerate(dataset.clip_ids)}
    batch = collate([dataset[position[c]] for c in clip_ids])
    with torch.no_grad():
        logits = trained.model(**model_inputs(batch, torch.device("cpu"))).logits["action"]
    return torch.sigmoid(logits).numpy()


def test_a_checkpoint_from_before_configurable_heads_is_one_line_saying_to_train_again(tmp_path):
    cfg = compose_config(["data.num_frames=4", "data.image_size=32", "fusion.hidden_dim=32",
                          "video_encoder=cnn3d", "audio_encoder=none", "fusion=concat"])
    from mmbehave.core.instantiate import build

    model = build(cfg.model, num_classes={"species": 2, "behavior": 3})
    old_config = {"model": OmegaConf.to_container(cfg.model, resolve=True)}
    del old_config["model"]["heads"]  # what configs held then
    old_state = {key.replace("heads.species.", "species_head.").replace("heads.behavior.", "behavior_head."): value
                 for key, value in model.state_dict().items()}
    checkpoint = {"model": old_state, "classes": {"species": ["a", "b"], "behaviors": ["x", "y", "z"]},
                  "data_stats": {"mel_mean": 0.0, "mel_std": 1.0}, "config": OmegaConf.to_yaml(old_config),
                  "preprocess": {"num_frames": 4, "image_size": 32, "frame_window": None, "sample_rate": 16000,
                                 "clip_seconds": 1.0, "n_mels": 64, "n_fft": 512, "hop_length": 320},
                  "modalities": ["video"]}
    torch.save(checkpoint, tmp_path / "old.pth")
    with pytest.raises(CheckpointError) as info:
        load_trained_model(tmp_path / "old.pth")
    message = str(info.value)
    assert "before configurable heads" in message and "train the model again" in message and "\n" not in message


def test_the_mammalps_preset_has_its_three_heads_with_a_multi_label_action():
    cfg = compose_config(["model/heads=mammalps"])
    from mmbehave.domain.heads import heads_from_config

    heads = heads_from_config(cfg)
    assert [(h.name, h.column, h.type) for h in heads] == [("species", "species", "single"),
                                                           ("activity", "activity", "single"),
                                                           ("action", "action", "multi")]
    assert heads[2].separator == "|"
    from mmbehave.metrics.metric_names import epoch_metric_names

    assert {"val/activity_macro_f1", "val/action_macro_ap", "val/action_samples_f1"} <= set(epoch_metric_names(heads))
