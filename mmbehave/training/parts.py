"""Everything a training run is made of, built from config and the prepared data in one place.

    RunSettings + the config's _target_ nodes + PreparedData ─► build_parts ─► TrainingParts(model, optimizer,
        lr schedule, grad scaler, loss, train / val loaders, step settings, ...)

Every part with a ``_target_`` (model, optimizer, lr schedule, loss) is instantiated from its config node
through ``mmbehave.core.instantiate.build``; everything else comes from the typed settings, and what only the
data knows (class counts, steps per epoch, training labels) is added here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Subset

from mmbehave.checkpoints.frozen_weights import frozen_digests
from mmbehave.core.instantiate import build
from mmbehave.data.dataset import ClipDataset
from mmbehave.data.metadata import ClassLists
from mmbehave.data.prepared import PreparedData, make_dataset, make_dataset_files, make_loader
from mmbehave.domain.heads import HeadSpec, class_counts
from mmbehave.models.precision_plan import PrecisionPlan, plan_and_apply
from mmbehave.tracking.store import resolve_tracking_uri
from mmbehave.training.distributed import ProcessGroup, ShardSampler
from mmbehave.training.feature_cache import prepare_feature_caches
from mmbehave.training.loop import StepSettings
from mmbehave.training.settings import RunSettings
from mmbehave.training.warm_start import WarmStart, warm_start

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TrainingParts:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None     # fp16 only
    loss_fn: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    generator: torch.Generator              # the train loader's shuffling stream, reseeded every epoch
    step: StepSettings
    classes: ClassLists
    modalities: tuple[str, ...]
    fusion_params: float                    # the fusion module's size, a metric for multi-objective sweeps
    feature_cache: dict[str, str]           # {modality: cache key, or "off: <why>"} (training.feature_cache)
    train_counts: dict[str, list[int]]      # {head: training clips per class}: frequent / rare classes, kept in checkpoints
    heads: tuple[HeadSpec, ...] = ()        # model.heads, in order
    group: ProcessGroup = ProcessGroup()    # this process under torchrun (rank 0 of 1 otherwise)
    train_model: nn.Module | None = None    # what training steps call: the model, or its DDP wrapper
    frozen_digests: dict[str, str] = field(default_factory=dict)  # encoders checkpoints name, not copy
    precision: PrecisionPlan | None = None  # each part's precision (hardware.precision), logged with the run
    warm_start: WarmStart | None = None     # training.init_from: the earlier model the weights came from

    @property
    def stepped_model(self) -> nn.Module:
        return self.train_model if self.train_model is not None else self.model


# Parameters that are not weight matrices by role, though some are 2-D or 3-D tensors: tokens and positions.
NO_DECAY_NAMES = ("cls_token", "bottleneck", "position_embedding", "position_embeddings")


def parameter_groups(model: nn.Module) -> list[dict]:
    """The trainable parameters in two optimizer groups: weight matrices and convolution kernels decay (the
    optimizer's ``weight_decay``); biases, norms, CLS, bottleneck and position parameters do not (decaying
    them only pulls learned offsets and tokens towards zero: the usual rule for transformers)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim < 2 or any(part in NO_DECAY_NAMES for part in name.split("."))
        (no_decay if exempt else decay).append(parameter)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_loaders(settings: RunSettings, prepared: PreparedData, cached: dict, generator: torch.Generator,
                 group: ProcessGroup, distillation=None) -> tuple[ClipDataset, DataLoader, DataLoader]:
    """(the whole training set, the train loader, the val loader): augmented training clips (or, with
    training.overfit_batches, the same first clips every epoch, validated on), under torchrun each process's
    share (train padded to equal length: equal steps; val without repeats). ``distillation``
    (distilling.distillation): the steps read the teacher's answers too, and its unlabelled clips."""
    training, hardware, modalities, classes = settings.training, settings.hardware, settings.modalities, prepared.classes
    train_set = make_dataset(prepared, "train", modalities, classes, settings.data.augment, cached["train"])
    val_set = make_dataset(prepared, "val", modalities, classes, cached=cached["val"])
    shuffle, fitted_set = training.shuffle, train_set if distillation is None else distillation.training_set(train_set)
    if training.overfit_batches:  # can the model memorise anything at all?
        clips = range(min(len(train_set), training.overfit_batches * training.batch_size))
        fitted_set, val_set, shuffle = Subset(fitted_set, clips), Subset(train_set, clips), False
    loader_options = {"num_workers": hardware.num_workers, "pin_memory": hardware.pin_memory}
    train_sampler = val_sampler = None
    if group.active:
        from torch.utils.data.distributed import DistributedSampler

        train_sampler = DistributedSampler(fitted_set, group.world_size, group.rank, shuffle=shuffle, seed=settings.seed)
        val_sampler = ShardSampler(len(val_set), group)
    train_loader = make_loader(fitted_set, training.batch_size, shuffle=shuffle, generator=generator,
                               sampler=train_sampler, **loader_options)
    val_loader = make_loader(val_set, training.batch_size, sampler=val_sampler, **loader_options)
    return train_set, train_loader, val_loader


@dataclass(frozen=True)
class RunBuilders:
    """The raw config's ``_target_`` nodes and the two things that instantiate them: after the settings are read,
    this is the only way a training run reaches the raw config, so a reader sees at a glance that it only builds."""

    config: DictConfig
    distillation: object = None  # distilling.distillation.Distillation: python -m mmbehave.distill's teacher

    def dataset_files(self) -> None:
        """``data.prepare`` (the built-in data's generator), when the dataset has one."""
        make_dataset_files(self.config.data)

    def parts(self, settings: RunSettings, prepared: PreparedData, group: ProcessGroup) -> TrainingParts:
        if self.distillation is not None:
            self.distillation.prepare(settings, prepared)  # the teacher's answers, before the student exists
        return build_parts(self.config, settings, prepared, group, self.distillation)


def build_parts(cfg: DictConfig, settings: RunSettings, prepared: PreparedData,
                group: ProcessGroup = ProcessGroup(), distillation=None) -> TrainingParts:
    """``cfg``: only its ``_target_`` nodes are read (model, optimizer, training.lr_schedule, training.loss)."""
    training, hardware, modalities = settings.training, settings.hardware, settings.modalities
    classes = prepared.classes
    device = torch.device(hardware.device)

    # ---- model and optimizer
    log.info("Instantiating model <%s>", cfg.model._target_)
    model = build(cfg.model, num_classes=classes.sizes()).to(device)
    # Before the feature caches: a frozen encoder's cached outputs must be those of the weights it starts from.
    warm = (warm_start(model, training.init_from, resolve_tracking_uri(settings.mlflow.tracking_uri), classes)
            if training.init_from else None)
    # Constant over epochs, logged with them so that optimized_metric can name it (hparams_search=mbt_pareto).
    fusion_params = float(sum(p.numel() for p in model.fusion.parameters()))
    log.info("Instantiating optimizer <%s>", cfg.optimizer._target_)
    optimizer = build(cfg.optimizer)(params=parameter_groups(model))

    # ---- each part's precision (hardware.precision=auto decides it here); a feature cache is encoded in it too
    precision = plan_and_apply(model, hardware.precision, device, settings.data.preprocess, modalities,
                               hardware.bf16_min_gflop)
    log.info("%s", precision.line())

    # ---- frozen encoders' outputs, computed once (training.feature_cache); the digests of those checkpoints name
    named = frozen_digests(model, cfg.model, training.frozen_in_checkpoints)
    cached, cache_info = prepare_feature_caches(cfg.model, model, prepared, modalities=modalities, splits=("train", "val"),
                                                device=device, mode=training.feature_cache, precision=precision,
                                                batch_size=training.batch_size, augmentation=settings.data.augment,
                                                cache_dir=Path(training.feature_cache_dir), digests=named)

    # ---- data loaders
    generator = torch.Generator()
    train_set, train_loader, val_loader = make_loaders(settings, prepared, cached, generator, group, distillation)

    # ---- schedule, precision, loss
    batches = len(train_loader) if training.limit_train_batches is None else min(len(train_loader), training.limit_train_batches)
    steps_per_epoch = math.ceil(batches / training.grad_accum_steps)
    log.info("Instantiating LR schedule <%s>", cfg.training.lr_schedule._target_)
    scheduler = build(cfg.training.lr_schedule)(optimizer, steps_per_epoch=steps_per_epoch, num_epochs=training.num_epochs)
    scaler = torch.amp.GradScaler(device.type) if hardware.precision == "fp16" else None
    log.info("Instantiating loss <%s>", cfg.training.loss._target_)
    loss_fn = build(cfg.training.loss)(heads=prepared.heads, train_targets=train_set.targets,
                                       num_classes=classes.sizes()).to(device)
    step = StepSettings(device=device, precision=hardware.precision, grad_accum_steps=training.grad_accum_steps,
                        grad_clip_norm=training.grad_clip_norm, limit_batches=training.limit_train_batches,
                        modality_dropout=training.modality_dropout)
    # The whole training split (not an overfit subset): the class frequencies the long tail is defined by.
    train_counts = {head.name: class_counts(head, train_set.targets[head.name], len(classes[head.name]))
                    for head in prepared.heads}
    train_model = None
    if group.active:  # gradients averaged over the processes; rank 0's initial weights broadcast to the others
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              find_unused_parameters=hardware.find_unused_parameters)
    return TrainingParts(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, loss_fn=loss_fn,
                         train_loader=train_loader, val_loader=val_loader, generator=generator, step=step,
                         classes=classes, modalities=modalities, fusion_params=fusion_params, feature_cache=cache_info,
                         frozen_digests=named, precision=precision,
                         train_counts=train_counts, heads=tuple(prepared.heads), group=group, train_model=train_model,
                         warm_start=warm)
