"""Checkpoints written by a thread (``mmbehave/checkpoints/background_writer.py``): what is written is the state
at submit time, whatever training does next; writes land in order before ``then`` runs; a failed write is raised
in the caller, not lost; leaving the block waits for every write. Real files, real threads."""

from __future__ import annotations

import threading

import pytest
import torch

from mmbehave.checkpoints.background_writer import CheckpointWriter
from mmbehave.core.errors import StorageError


def load(path):
    return torch.load(path, weights_only=True)


def test_the_file_holds_the_state_of_submit_time_not_what_training_did_next(tmp_path):
    weights = torch.zeros(1000)
    with CheckpointWriter() as writer:
        writer.submit([({"model": {"w": weights}, "epoch": 0}, tmp_path / "latest.pth")])
        weights += 1.0  # the next step changes the weights at once
        writer.join()
    assert load(tmp_path / "latest.pth")["model"]["w"].sum().item() == 0.0


def test_writes_land_in_order_before_then_runs_and_the_block_waits_for_them(tmp_path):
    seen: list[int] = []
    written = threading.Event()
    with CheckpointWriter() as writer:
        for epoch in range(3):
            writer.submit([({"epoch": epoch, "w": torch.full((10,), float(epoch))}, tmp_path / "latest.pth")],
                          then=lambda epoch=epoch: seen.append(load(tmp_path / "latest.pth")["epoch"]))
        writer.submit([({"epoch": 3}, tmp_path / "best.pth")], then=written.set)
    assert seen == [0, 1, 2] and written.is_set()  # each then() saw its own epoch on disk; all done at exit
    assert load(tmp_path / "latest.pth")["epoch"] == 2


def test_a_failed_write_is_raised_in_the_training_thread(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoints folder should be")
    with pytest.raises((StorageError, OSError)):
        with CheckpointWriter() as writer:
            writer.submit([({"epoch": 0}, blocker / "latest.pth")])
            writer.join()
    with CheckpointWriter(background=False) as writer:  # training.background_saves=false: written at once
        writer.submit([({"epoch": 5}, tmp_path / "latest.pth")])
        assert load(tmp_path / "latest.pth")["epoch"] == 5
