"""Data-parallel training under torchrun: one process per device, and rank 0 owns everything that is written.

    torchrun --nproc_per_node=4 -m mmbehave.train hardware=ddp        # 4 GPUs on one machine (NCCL)
    torchrun --nproc_per_node=2 -m mmbehave.train hardware=ddp_cpu    # 2 CPU processes (gloo): laptops, tests

    every rank:  same config and seed ─► same initial weights ─► its shard of each batch (DistributedSampler)
                 ─► forward / backward ─► gradients averaged by DDP (not between accumulation steps: no_sync)
                 ─► validation on its share of the val clips ─► all predictions gathered ─► the same metrics
    rank 0 only: run folder, train.log, MLflow run, checkpoints, the MLflow model

``training.batch_size`` is per process: the global batch is batch_size x world size. Every rank computes the
metrics from all the validation clips, so best.pth, early stopping and the sweep value agree across ranks.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import distributed as dist
from torch.utils.data import Sampler

from mmbehave.core.errors import ConfigError

log = logging.getLogger(__name__)
BACKENDS = ("gloo", "nccl")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands: rank 0 of 1 outside torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_process_group(distributed: bool, backend: str, device: str) -> ProcessGroup:
    """Join torchrun's process group when ``hardware.distributed``; ConfigError when asked for outside torchrun
    (or with a backend that cannot work). Returns the single-process group otherwise."""
    if not distributed:
        return ProcessGroup()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ConfigError(f"hardware.distributed=true runs one process per device under torchrun ({', '.join(missing)} "
                          "not set): torchrun --nproc_per_node=<N> -m mmbehave.train hardware=ddp ... "
                          "(or hardware=cpu / cuda for one process).")
    if backend not in BACKENDS:
        raise ConfigError(f"hardware.backend={backend}: use gloo (CPU) or nccl (CUDA GPUs).")
    if backend == "nccl" and not device.startswith("cuda"):
        raise ConfigError(f"hardware.backend=nccl needs hardware.device=cuda (it is {device}); on the CPU use gloo "
                          "(hardware=ddp_cpu).")
    group = ProcessGroup(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device.startswith("cuda"):
        torch.cuda.set_device(group.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    if not group.is_main:  # one voice on the console: rank 0's
        logging.getLogger("mmbehave").setLevel(logging.WARNING)
    log.info("Distributed training: %d processes (%s), this is rank %d", group.world_size, backend, group.rank)
    return group


def end_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_device(device: str, group: ProcessGroup) -> str:
    """``cuda`` becomes this process's own GPU (``cuda:<local rank>``) under torchrun."""
    return f"cuda:{group.local_rank}" if group.active and device == "cuda" else device


def broadcast(value: Any, group: ProcessGroup) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not group.active:
        return value
    holder = [value if group.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather(value: Any, group: ProcessGroup) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not group.active:
        return [value]
    gathered: list[Any] = [None] * group.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(group: ProcessGroup) -> None:
    if group.active:
        dist.barrier()


class ShardSampler(Sampler[int]):
    """Rank r's validation clips: every world_size-th from r, none repeated (DistributedSampler pads with
    repeats to even the ranks out, which would count some clips twice in the metrics)."""

    def __init__(self, size: int, group: ProcessGroup) -> None:
        self.indices = list(range(group.rank, size, group.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def discard_own_folder(own: Path, run_dir: Path, group: ProcessGroup) -> None:
    """A rank other than 0 got a Hydra output folder of its own (its clock named it); the run is rank 0's
    folder, so remove this one when it holds only Hydra's files."""
    own, run_dir = own.resolve(), run_dir.resolve()
    if group.is_main or own == run_dir or not own.is_dir():
        return
    if all(path.name == ".hydra" or path.suffix == ".log" for path in own.iterdir()):
        shutil.rmtree(own, ignore_errors=True)
