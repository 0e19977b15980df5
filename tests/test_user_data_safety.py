"""Nothing a user has is destroyed or leaked: a dataset is never wiped by the synthetic generator, a checkpoint
never prepares data or reaches the network, an output never replaces an input, a password never reaches a file,
preprocessing runs one at a time, and the quiet or raw failures of the adversarial pass are one line each
(``mmbehave/core/guards.py``, ``data/synthetic.py``, ``training/trained_model.py``, ``core/redact.py``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import TINY_SPLITS, compose_config, default_heads, free_port, run_module
from omegaconf import OmegaConf

from mmbehave.core.errors import CheckpointError, ConfigError, DataError, InputError
from mmbehave.core.locks import exclusive
from mmbehave.core.redact import RedactingFilter
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import read_split
from mmbehave.data.synthetic.generator import (
    SETTINGS_FILE,
    ensure_synthetic_dataset,
    generator_settings,
)
from mmbehave.domain.config_checks import check_config

SECRET = "Pl4nted-Secret"
TINY_DATA = ["data.clips_per_split.train=4", "data.clips_per_split.val=2", "data.clips_per_split.test=2"]


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> SHA-256): equal digests mean nothing was changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def user_dataset(root: Path, synthetic_root: Path) -> Path:
    """What a user's own dataset looks like before preprocessing: clips, label tables and notes."""
    (root / "raw" / "videos").mkdir(parents=True)
    (root / "raw" / "metadata").mkdir(parents=True)
    for clip_id in ("train_00000", "train_00001"):
        shutil.copy(synthetic_root / "raw" / "videos" / f"{clip_id}.mp4", root / "raw" / "videos" / f"{clip_id}.mp4")
    pd.DataFrame({"clip_id": ["train_00000", "train_00001"], "species": ["red_fox", "badger"],
                  "behavior": ["walking", "resting"]}).to_csv(root / "raw" / "metadata" / "train.csv", index=False)
    (root / "field_notes.txt").write_text("camera 7 was knocked over on 12 May\n")
    return root


# ---- 1. the synthetic generator never deletes a folder it did not make

@pytest.mark.slow
def test_training_with_data_root_on_your_own_dataset_refuses_and_keeps_every_file(synthetic_root, tmp_path):
    mine = user_dataset(tmp_path / "my_dataset", synthetic_root)
    before = tree_digest(mine)
    result = run_module("mmbehave.train", f"data.root={mine}", "debug=fast", f"hydra.run.dir={tmp_path / 'run'}",
                        tmp_path=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "mmbehave did not make" in error[0] and "data=processed" in error[0] and "field_notes.txt" in error[0]
    assert tree_digest(mine) == before


def test_new_settings_generate_beside_and_swap_in_but_never_take_a_users_files(tmp_path):
    root = tmp_path / "bench"
    first = compose_config([f"data.root={root}", *TINY_DATA]).data
    ensure_synthetic_dataset(first, num_workers=1, progress=False)
    (tmp_path / ".bench.generating").mkdir()  # what a generator killed half-way leaves beside the folder
    (tmp_path / ".bench.generating" / "half.mp4").write_bytes(b"x")

    changed = compose_config([f"data.root={root}", *TINY_DATA, "data.seed=5"]).data
    ensure_synthetic_dataset(changed, num_workers=1, progress=False)
    assert json.loads((root / "raw" / SETTINGS_FILE).read_text()) == generator_settings(changed)
    assert len(pd.read_csv(DatasetLayout(root).manifest)) == 8
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bench")) == [".bench.lock"]

    (root / "raw" / "my_labels_fixed.csv").write_text("clip_id,note\n")
    before = tree_digest(root)
    with pytest.raises(InputError, match=r"also holds files the generator did not write \(raw/my_labels_fixed.csv\)"):
        ensure_synthetic_dataset(compose_config([f"data.root={root}", *TINY_DATA, "data.seed=6"]).data,
                                 num_workers=1, progress=False)
    assert tree_digest(root) == before


# ---- 2. and 3. a checkpoint's config is data: it prepares nothing and reaches no network

def crafted(trained_run, tmp_path: Path, name: str, change) -> Path:
    checkpoint = torch.load(trained_run.checkpoint, weights_only=True)
    config = OmegaConf.create(checkpoint["config"])
    change(config)
    checkpoint["config"] = OmegaConf.to_yaml(config)
    path = tmp_path / f"{name}.pth"
    torch.save(checkpoint, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_checkpoint_naming_your_folder_as_its_synthetic_data_cannot_touch_it(trained_run, tmp_path, command,
                                                                                synthetic_root):
    victim = user_dataset(tmp_path / "victim", synthetic_root)
    before = tree_digest(victim)

    def aim_at_victim(config):
        config.data.root = str(victim)
        config.data.prepare = {"_target_": "mmbehave.data.synthetic.generator.ensure_synthetic_dataset", "_partial_": True}

    path = crafted(trained_run, tmp_path, "aimed", aim_at_victim)
    result = run_module(f"mmbehave.{command}", f"checkpoint={path}", f"hydra.run.dir={tmp_path / 'out'}",
                        tmp_path=tmp_path, check=False, env=trained_run.env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert tree_digest(victim) == before
    assert "Generating the synthetic benchmark" not in result.stdout + result.stderr


def test_evaluation_data_comes_from_the_stored_preprocessing_values_only(trained_run, synthetic_root):
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import evaluation_data

    trained = load_trained_model(trained_run.checkpoint)
    trained.config.data.prepare = {"_target_": "os.system", "_args_": ["touch /tmp/mmbehave-pwned"]}
    data = evaluation_data(trained, str(synthetic_root))
    assert not data.generated and data.root == synthetic_root.resolve()
    assert data.preprocess == trained.preprocess


class ConnectionRecorder:
    """A TCP listener on 127.0.0.1 that counts the connections made to it (a stand-in for the model hub)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _accept(self) -> None:
        while self.running:
            try:
                connection, _ = self.socket.accept()
                self.connections += 1
                connection.close()
            except OSError:
                continue

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.socket.close()


def test_a_videomae_builder_anywhere_in_a_checkpoint_never_reaches_the_hub(trained_run, tmp_path, monkeypatch):
    from mmbehave.checkpoints.trained_model import load_trained_model

    def hub_encoder_inside_the_fusion(config):  # not under video_encoder / audio_encoder
        config.model.fusion.teacher = {"_target_": "mmbehave.models.video_encoders.build_videomae_encoder",
                                       "model_name": "MCG-NJU/videomae-base", "pretrained": True,
                                       "freeze_backbone": False, "on_load_failure": "raise", "num_frames": 8,
                                       "image_size": 32}

    path = crafted(trained_run, tmp_path, "hub", hub_encoder_inside_the_fusion)
    hub = ConnectionRecorder()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MMBEHAVE_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    try:
        with pytest.raises(CheckpointError):  # its weights fit no such encoder; what matters is how it got there
            load_trained_model(path)
    finally:
        hub.close()
    assert hub.connections == 0
    assert os.environ.get("HF_HUB_OFFLINE") is None  # the offline switch is only for the build


@pytest.mark.parametrize("change, says", [
    (lambda c: c.model.update({"_partial_": True}), "model._partial_ would leave the model itself unbuilt"),
    (lambda c: c.model.fusion.update({"_target_": ["mmbehave.models.mbt.MBTFusion"]}),
     "model.fusion._target_ is a list, not a dotted name"),
    (lambda c: c.model.fusion.update({"_partial_": "yes"}), "model.fusion._partial_='yes' is not true or false"),
    (lambda c: c.model.update({"_args_": [1]}), "model._args_ is not a key a model config uses"),
])
def test_a_malformed_target_in_a_checkpoint_is_one_line(trained_run, tmp_path, change, says):
    from mmbehave.checkpoints.trained_model import load_trained_model

    with pytest.raises(CheckpointError) as info:
        load_trained_model(crafted(trained_run, tmp_path, "malformed", change))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_model_components_alone_are_enough_to_rebuild_your_own_class(trained_run, tmp_path, monkeypatch):
    from mmbehave.checkpoints.trained_model import load_trained_model

    target = "user_components.LabFusion"  # tests/user_components.py: a user's own MBT subclass
    path = crafted(trained_run, tmp_path, "own", lambda c: c.model.fusion.update({"_target_": target}))
    monkeypatch.delenv("MMBEHAVE_TRUSTED_TARGETS", raising=False)
    monkeypatch.setenv("MMBEHAVE_MODEL_COMPONENTS", target)
    trained = load_trained_model(path)
    assert type(trained.model.fusion).__name__ == "LabFusion"


# ---- 4. outputs never replace inputs

@pytest.mark.parametrize("where", ["a_clip", "the_checkpoint", "a_folder", "a_users_csv"])
def test_predict_never_writes_over_an_input_or_a_file_it_did_not_write(trained_run, synthetic_root, tmp_path, where):
    from mmbehave.predicting.run import run_prediction

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(synthetic_root / "raw" / "videos" / "test_00000.mp4", clips / "a.mp4")
    shutil.copy(trained_run.checkpoint, tmp_path / "best.pth")
    (tmp_path / "counts.csv").write_text("site,count\nS1,3\n")
    output = {"a_clip": clips / "a.mp4", "the_checkpoint": tmp_path / "best.pth", "a_folder": clips,
              "a_users_csv": tmp_path / "counts.csv"}[where]
    before = tree_digest(tmp_path)
    cfg = compose_config([f"checkpoint={tmp_path / 'best.pth'}", f"input={clips}", f"output={output}"],
                         config_name="predict")
    with pytest.raises(InputError) as info:
        run_prediction(cfg)
    assert f"output={output}" in str(info.value) and "\n" not in str(info.value)
    assert tree_digest(tmp_path) == before


def test_a_camtrap_dp_output_never_replaces_a_package_or_the_dataset_it_reads(trained_run, synthetic_root, tmp_path):
    from mmbehave.predicting.run import run_prediction

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(synthetic_root / "raw" / "videos" / "test_00000.mp4", clips / "a.mp4")
    package = tmp_path / "field_package"  # the source package of human observations
    package.mkdir()
    (package / "datapackage.json").write_text(json.dumps({"name": "my-survey", "resources": []}))
    (package / "observations.csv").write_text("observationID,scientificName\no1,Vulpes vulpes\n")
    before = tree_digest(package)
    with pytest.raises(InputError, match="holds a Camtrap DP package .* that mmbehave.predict did not write"):
        run_prediction(compose_config([f"checkpoint={trained_run.checkpoint}", f"input={clips}", "format=camtrap_dp",
                                       f"output={package}"], config_name="predict"))
    with pytest.raises(InputError, match="lies inside .*raw, which this command reads"):
        run_prediction(compose_config([f"checkpoint={trained_run.checkpoint}", f"input={synthetic_root / 'raw' / 'videos'}",
                                       f"output={synthetic_root / 'raw' / 'predictions.csv'}"], config_name="predict"))
    assert tree_digest(package) == before


def test_split_never_overwrites_its_own_input_nor_tables_it_did_not_write(tmp_path):
    from mmbehave.data.splits.maker import make_splits, write_outputs

    rows = [{"clip_id": f"S{s}-{n}", "species": ["fox", "deer"][n % 2], "behavior": ["walking", "resting"][n // 2 % 2],
             "site": f"S{s}"} for s in range(8) for n in range(4)]
    folder = tmp_path / "d"
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    keys = {"group_by": "site", "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0,
            "heads": ["species", "behavior"], "label_separator": "|"}
    before = tree_digest(folder)
    with pytest.raises(InputError, match=r"labels=.*train.csv is the train.csv this split writes"):
        make_splits({"labels": str(folder / "train.csv"), "output_dir": str(folder), "overwrite": True, **keys})
    elsewhere = tmp_path / "labels.csv"
    shutil.copy(folder / "train.csv", elsewhere)
    with pytest.raises(InputError, match="which an earlier split did not write"):  # a user's own train.csv
        make_splits({"labels": str(elsewhere), "output_dir": str(folder), "overwrite": True, **keys})
    with pytest.raises(InputError, match="is a file"):
        make_splits({"labels": str(elsewhere), "output_dir": str(elsewhere), **keys})
    assert tree_digest(folder) == before
    out = tmp_path / "splits"
    write_outputs(make_splits({"labels": str(elsewhere), "output_dir": str(out), **keys}))
    write_outputs(make_splits({"labels": str(elsewhere), "output_dir": str(out), "overwrite": True, **keys, "seed": 1}))
    assert len(pd.read_csv(out / "splits.csv")) == 32  # its own outputs are replaced with overwrite=true


def test_the_camtrap_dp_importer_never_replaces_a_dataset_it_did_not_write(tmp_path, synthetic_root):
    from test_camtrap_dp import build_package, options

    from mmbehave.data.camtrap_dp.importer import import_package

    package = build_package(tmp_path)
    mine = user_dataset(tmp_path / "my_dataset", synthetic_root)
    before = tree_digest(mine)
    with pytest.raises(InputError, match="which import_camtrap_dp did not write"):
        import_package(options(package, mine))
    with pytest.raises(InputError, match="lies inside .*, which this command reads"):
        import_package(options(package, package.package_dir / "dataset"))
    assert tree_digest(mine) == before
    imported = tmp_path / "imported"
    import_package(options(package, imported))
    import_package(options(package, imported))  # its own earlier import is replaced
    assert (imported / "import_report.csv").is_file()


def test_a_symlinked_media_file_is_imported_as_the_file_it_points_to(tmp_path):
    from test_camtrap_dp import build_package, options

    from mmbehave.data.camtrap_dp.importer import import_package

    package = build_package(tmp_path)
    video = next(path for path in package.media_dir.rglob("A-v1*"))
    real = tmp_path / "elsewhere" / video.name
    real.parent.mkdir()
    shutil.move(video, real)
    video.symlink_to(os.path.relpath(real, video.parent))  # relative: it breaks if copied as a link
    result = import_package(options(package, tmp_path / "out"))
    written = next(clip for clip in result.clips if "A-v1" in clip.media_ids)
    target = tmp_path / "out" / "raw" / written.video_path
    assert not target.is_symlink() and target.read_bytes() == real.read_bytes()


# ---- 5. no password in any file a failed run writes

class HalfServer:
    """Answers /health like an MLflow server, then hangs up on every API call: a server going down mid-run."""

    def __init__(self) -> None:
        import socketserver

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                if self.request.recv(65536).startswith(b"GET /health"):
                    self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("server, where", [("closed_port", "environment"), ("half_server", "command_line")])
def test_a_planted_password_is_in_no_file_a_failed_run_writes(synthetic_root, tmp_path, server, where):
    half = HalfServer() if server == "half_server" else None
    port = half.port if half else free_port()
    uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
    overrides = ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), f"hydra.run.dir={tmp_path / 'run'}"]
    env = {"MLFLOW_TRACKING_URI": uri} if where == "environment" else {"MLFLOW_TRACKING_URI": ""}
    if where == "command_line":
        overrides.append(f"mlflow.tracking_uri={uri}")
    started = time.monotonic()
    try:
        result = run_module("mmbehave.train", *overrides, tmp_path=tmp_path, env=env, check=False)
    finally:
        if half:
            half.close()
    assert result.returncode == 2 and time.monotonic() - started < 60, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr and "alice:***@127.0.0.1" in errors[0]
    assert SECRET not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "train.log" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []


def test_a_traceback_in_a_log_record_has_its_password_redacted(tmp_path):
    handler = logging.FileHandler(tmp_path / "job.log")
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("mmbehave.test_redacted_traceback")
    logger.addHandler(handler)
    try:
        raise RuntimeError(f"API request to http://alice:{SECRET}@db.lab/api failed")
    except RuntimeError:
        logger.exception("job failed")  # as Hydra logs a failed job: the message, then the traceback
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "job.log").read_text()
    assert "http://alice:***@db.lab/api" in text and SECRET not in text and "Traceback" in text


def test_an_unreachable_tracking_server_is_one_line_not_no_such_run():
    from mmbehave.checkpoints.sources import checkpoint_path
    from mmbehave.core.errors import TrackingError

    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        checkpoint_path(None, "0123abcd", f"http://bob:{SECRET}@127.0.0.1:{free_port()}")
    message = str(info.value)
    assert "no MLflow server answers (connection refused" in message and "bob:***@" in message
    assert SECRET not in message and "\n" not in message and time.monotonic() - started < 30


# ---- 6. preprocessing takes its dataset's lock

def test_a_second_preprocessing_run_waits_for_the_first(synthetic_root, tmp_path, caplog):
    from mmbehave.data.preprocessing import preprocess_from_config

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root / "raw", copy / "raw")
    data_cfg = compose_config([f"data.root={copy}", *TINY_SPLITS.split()]).data
    done = threading.Event()

    def second_run():
        preprocess_from_config(data_cfg, num_workers=1, progress=False, splits=("val",))
        done.set()

    with exclusive(DatasetLayout(copy).processed_dir):  # the first run holds the dataset
        with caplog.at_level(logging.WARNING, logger="mmbehave.core.locks"):
            thread = threading.Thread(target=second_run)
            thread.start()
            time.sleep(1.5)
            assert not done.is_set() and not DatasetLayout(copy).manifest.exists()
    thread.join(timeout=120)
    assert done.is_set() and len(pd.read_csv(DatasetLayout(copy).manifest)) == 20
    assert "Another run is preprocessing" in caplog.text


# ---- 7. silent or raw: each a line

def test_overrides_that_change_nothing_and_heads_that_train_nothing_are_refused():
    from mmbehave.domain.config_checks import check_overrides

    cfg = compose_config([])
    with pytest.raises(ConfigError, match=r"model.heads=\{\} changes nothing.*model.heads.<name>=null"):
        check_overrides(["model.heads={}"], cfg)
    check_overrides(["model.heads.behavior=null", "fusion.num_layers=4"], cfg)
    with pytest.raises(ConfigError, match="model.heads=null: a model needs its heads"):
        check_config(compose_config(["model.heads=null"]))
    with pytest.raises(ConfigError, match="every head's loss_weight is 0"):
        check_config(compose_config(["model.heads.species.loss_weight=0", "model.heads.behavior.loss_weight=0"]))


def test_invisible_characters_in_labels_are_removed_and_named(tmp_path, caplog):
    layout = DatasetLayout(tmp_path)
    layout.metadata_dir.mkdir(parents=True)
    pd.DataFrame({"clip_id": ["a", "b", "c"], "species": ["red_fox", "red_fox\u200b", "\ufeffbadger"],
                  "behavior": ["alarm", "alarm\u200d", "alarm"]}).to_csv(layout.metadata_csv("train"), index=False)
    with caplog.at_level(logging.WARNING):
        table = read_split(layout, "train", default_heads())
    assert list(table["species"]) == ["red_fox", "red_fox", "badger"] and set(table["behavior"]) == {"alarm"}
    assert "2 'species' cell(s) held invisible characters" in caplog.text and "row(s) 3, 4" in caplog.text


@pytest.mark.parametrize("option, says", [("batch_size=-3", "batch_size=-3: a whole number of at least 1"),
                                          ("top_k=0", "top_k=0: a whole number of at least 1")])
def test_predict_numbers_that_cannot_work_are_refused_before_any_clip(trained_run, synthetic_root, option, says):
    from mmbehave.predicting.run import run_prediction

    cfg = compose_config([f"checkpoint={trained_run.checkpoint}", f"input={synthetic_root / 'raw' / 'videos'}",
                          option], config_name="predict")
    with pytest.raises(ConfigError, match=says):
        run_prediction(cfg)


def test_event_table_rows_that_name_no_clip_are_named_in_a_warning(tmp_path, caplog):
    from mmbehave.predicting.events import plan_events, read_event_grouping

    clips = []
    for name in ("a", "b"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")
        clips.append(tmp_path / f"{name}.mp4")
    table = tmp_path / "events.csv"
    pd.DataFrame({"clip_id": ["a", "b", "c_typo"], "event": ["e1", "e1", "e2"]}).to_csv(table, index=False)
    with caplog.at_level(logging.WARNING):
        plan = plan_events(clips, read_event_grouping("event", str(table)), tmp_path)
    assert set(plan.event_of.values()) == {"e1"}
    assert "1 row(s) name no clip of input= (row 4: c_typo)" in caplog.text


def test_split_fractions_must_be_finite():
    from mmbehave.data.splits.options import parse_fractions

    with pytest.raises(ConfigError, match="every share must be a finite number"):
        parse_fractions({"train": float("nan"), "val": 0.5, "test": 0.5})


def test_evaluation_of_a_missing_dataset_is_one_line(trained_run, tmp_path):
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import split_dataset

    with pytest.raises(DataError, match="no dataset here"):
        split_dataset(load_trained_model(trained_run.checkpoint), "test", str(tmp_path / "nothing"))
