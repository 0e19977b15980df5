"""A checkpoint is data, never a program: a file from elsewhere can only rebuild model components, and a file
that is not a checkpoint is one line saying so (``mmbehave/training/checkpoint.py``, ``models/components.py``).

The commands' functions are called in this process on their composed configs (a ``UserError`` is what the CLI
prints as one ``error:`` line, exit 2); export's refusal also goes through the real command line."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import run_here, run_module, train_here, user_error
from omegaconf import OmegaConf

from mmbehave.checkpoints.files import RESUME_KEYS, read_checkpoint
from mmbehave.checkpoints.trained_model import load_trained_model
from mmbehave.core.errors import CheckpointError
from mmbehave.models.components import foreign_targets, register_model_component


class Payload:
    """What a malicious pickle carries: unpickling it would run a shell command."""

    def __reduce__(self):
        return os.system, ("touch /tmp/mmbehave-pwned",)


def crafted_checkpoint(trained_run, tmp_path, target_file):
    """The session's real checkpoint, with its fusion swapped for a helper that writes a file."""
    checkpoint = torch.load(trained_run.checkpoint, weights_only=True)
    config = OmegaConf.create(checkpoint["config"])
    config.model.fusion = {"_target_": "mmbehave.core.atomic.write_text_atomic", "target": str(target_file),
                           "text": "import os  # would run at the next Python start if this were a .pth in site-packages"}
    checkpoint["config"] = OmegaConf.to_yaml(config)
    path = tmp_path / "crafted.pth"
    torch.save(checkpoint, path)
    return path


def test_a_checkpoint_naming_another_callable_builds_nothing(trained_run, tmp_path):
    target_file = tmp_path / "written_by_the_checkpoint.txt"
    path = crafted_checkpoint(trained_run, tmp_path, target_file)
    with pytest.raises(CheckpointError) as info:
        load_trained_model(path)
    message = str(info.value)
    assert "model.fusion._target_=mmbehave.core.atomic.write_text_atomic is not a model component" in message
    assert "\n" not in message and not target_file.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_every_command_refuses_the_crafted_checkpoint_in_one_line(trained_run, synthetic_root, tmp_path, command):
    target_file = tmp_path / "written_by_the_checkpoint.txt"
    path = crafted_checkpoint(trained_run, tmp_path, target_file)
    extra = [f"input={synthetic_root / 'raw' / 'videos'}"] if command == "predict" else []
    message = user_error(lambda: run_here(command, f"checkpoint={path}", *extra, tmp_path=tmp_path, env=trained_run.env))
    assert "is not a model component" in message
    assert not target_file.exists()


@pytest.mark.slow
def test_the_export_command_refuses_the_crafted_checkpoint_with_exit_2(trained_run, tmp_path):
    target_file = tmp_path / "written_by_the_checkpoint.txt"
    path = crafted_checkpoint(trained_run, tmp_path, target_file)
    result = run_module("mmbehave.export", f"checkpoint={path}", f"hydra.run.dir={tmp_path / 'out'}",
                        tmp_path=tmp_path, check=False, env=trained_run.env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "is not a model component" in result.stderr and "Traceback" not in result.stderr
    assert not target_file.exists()


def test_a_registered_component_is_allowed():
    config = {"_target_": "mmbehave.models.classifier.MultiModalClassifier",
              "fusion": {"_target_": "mylab.models.MyFusion", "_partial_": True}}
    assert foreign_targets(config) == [("model.fusion._target_", "mylab.models.MyFusion")]
    register_model_component("mylab.models.MyFusion")
    assert foreign_targets(config) == []


def not_a_checkpoint(tmp_path, kind: str):
    path = tmp_path / f"{kind}.pth"
    if kind == "text":
        path.write_text("just some notes, not a model\n")
    elif kind == "dict_without_keys":
        torch.save({"weights": torch.zeros(2), "epoch": 3}, path)
    elif kind == "pickle_payload":
        torch.save({"model": Payload()}, path)
    elif kind == "wrong_types":
        torch.save({"model": {}, "classes": "fox,deer", "config": "model: {}", "preprocess": {}, "data_stats": {}}, path)
    return path


@pytest.mark.parametrize("kind, says", [
    ("text", "not a readable torch file"),
    ("dict_without_keys", "it lacks model, classes, config, preprocess, data_stats"),
    ("pickle_payload", "it holds Python objects, which are never loaded"),
    ("wrong_types", "wrong types: classes (str, not dict)"),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line_saying_what_it_lacks(tmp_path, kind, says):
    path = not_a_checkpoint(tmp_path, kind)
    for required in (None, RESUME_KEYS):
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path) if required is None else read_checkpoint(path, required)
        message = str(info.value)
        assert says in message and "An mmbehave checkpoint is" in message and "\n" not in message
    assert not os.path.exists("/tmp/mmbehave-pwned")


@pytest.mark.slow
def test_resume_and_evaluate_answer_a_pickle_payload_in_one_line(tmp_path):
    path = not_a_checkpoint(tmp_path, "pickle_payload")
    for message in (user_error(lambda: train_here(tmp_path, f"resume={path}", run="o")),
                    user_error(lambda: run_here("evaluate", f"checkpoint={path}", tmp_path=tmp_path, run="o"))):
        assert "not an mmbehave checkpoint" in message
    assert not os.path.exists("/tmp/mmbehave-pwned")
