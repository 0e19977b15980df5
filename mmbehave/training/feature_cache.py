"""Frozen encoders' outputs, computed once and reused by every epoch and every trial of a sweep.

    frozen encoder + no input augmentation ──► key = hash(encoder config, its weights, the split's input files,
        preprocessing, mel statistics) ──► data/cache/<modality>-<key>/<split>.npy (float16, memory-mapped)
    the dataset then hands out tokens ("video_tokens" / "audio_tokens") instead of frames or spectrograms

A fusion sweep over a frozen VideoMAE-base costs one encoder pass (about 180 GFLOPs a clip) plus cheap
fusion trainings, instead of the encoder pass in every epoch of every trial. ``training.feature_cache``:
``auto`` caches a modality when the result is the same as computing it (the encoder is frozen, has no active
dropout, and its input is not augmented), ``true`` requires it (an error says why it cannot), ``false`` never.
The float16 storage is the only difference, well below what training notices (tested).

Several trials starting at once build a cache once: one holds the lock and writes (to a temp file, renamed
when complete); the others wait, then read it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.core.errors import ConfigError
from mmbehave.core.locks import exclusive
from mmbehave.core.precision import inference_casts, part_autocast
from mmbehave.core.progress import show_progress
from mmbehave.data.dataset import Augmentation
from mmbehave.models.digests import weights_digest
from mmbehave.models.precision_plan import PrecisionPlan

log = logging.getLogger(__name__)

CACHE_DTYPE = np.float16
# The augmentation keys that change each modality's encoder input (conf/data/*.yaml, data.augment).
AUGMENTS = {"video": ("temporal_jitter",), "audio": ("time_masks", "freq_masks")}


def why_not_cacheable(modality: str, encoder: nn.Module, augmentation: Augmentation) -> str | None:
    """None if the encoder's output for a clip is the same every time it is asked; else why not."""
    if any(p.requires_grad for p in encoder.parameters()):
        return f"{modality}_encoder is trained (freeze_backbone=false)"
    active = [m for m in encoder.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    if active:
        return f"{modality}_encoder has active dropout (p={active[0].p})"
    augmented = [k for k in AUGMENTS[modality] if getattr(augmentation, k) > 0]
    if augmented:
        return f"its input is augmented (data.augment.{augmented[0]}={getattr(augmentation, augmented[0])})"
    return None


def inputs_digest(paths: list[Path]) -> str:
    """The split's input files as they are now (name, size, modification time): re-preprocessing invalidates."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedTokens:
    """One split's cached tokens for one modality: ``tokens`` (N, T, D) float16, rows in ``clip_ids`` order."""

    modality: str
    key: str
    path: Path
    tokens: np.ndarray
    clip_ids: list[str]

    def row(self, clip_id: str) -> torch.Tensor:
        return torch.from_numpy(self.tokens[self._index[clip_id]].astype(np.float32))

    @property
    def _index(self) -> dict[str, int]:
        index = self.__dict__.get("_index_cache")
        if index is None:
            index = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
            object.__setattr__(self, "_index_cache", index)
        return index

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def encoder_key(modality: str, encoder_cfg: DictConfig, encoder: nn.Module, preprocess: dict,
                mel_stats: dict, digest: str | None = None, precision: str = "fp32") -> str:
    """The cache folder's key: what decides an encoder's output for a given input file (``digest``: the
    encoder's weights digest where the caller has it already; ``precision``: the one it encodes in, so that
    tokens made in bf16 are never read by a run that encodes in fp32, or the other way round)."""
    description = {
        "modality": modality,
        "encoder": OmegaConf.to_container(encoder_cfg, resolve=True),
        "weights": digest or weights_digest(encoder),
        "preprocess": preprocess,
        "mel_stats": mel_stats if modality == "audio" else None,
        "dtype": np.dtype(CACHE_DTYPE).name,
        **({"precision": precision} if precision != "fp32" else {}),  # fp32: the keys made before precision existed
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def encode_split(encoder: nn.Module, dataset, modality: str, device: torch.device, batch_size: int,
                 precision: str = "fp32") -> np.ndarray:
    """(N, T, D) float16 tokens for every clip of ``dataset`` (zeros for clips without ``modality``, which
    never go through the encoder, as in training), encoded in ``precision`` (the run's plan for the encoder)."""
    from mmbehave.data.prepared import make_loader

    was_training = encoder.training
    encoder.eval()
    encoded: list[tuple[torch.Tensor | None, int]] = []
    try:
        with inference_casts(device):
            for batch in _progress(make_loader(dataset, batch_size), f"caching {modality}"):
                x, present = batch[modality].to(device), batch[f"{modality}_present"].to(device)
                rows = present.nonzero().squeeze(1)
                with part_autocast(device, precision):
                    out = encoder(x.index_select(0, rows)).float().cpu() if len(rows) else None
                encoded.append((out, present.cpu()))
    finally:
        encoder.train(was_training)
    shape = next((out.shape[1:] for out, _ in encoded if out is not None), None)
    if shape is None:
        raise ConfigError(f"no clip of this split has {modality}: there is nothing to cache.")
    chunks = []
    for out, present in encoded:
        chunk = torch.zeros(len(present), *shape)
        if out is not None:
            chunk[present] = out
        chunks.append(chunk.numpy().astype(CACHE_DTYPE))
    return np.concatenate(chunks)


def _progress(loader, desc: str):
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, unit="batch", leave=False, disable=not show_progress())


def cached_split(folder: Path, split: str, clip_ids: list[str], inputs: str, build) -> CachedTokens:
    """The split's cached tokens in ``folder``, (re)built by ``build()`` -> (N, T, D) array when missing or made
    from other input files. One writer at a time; the others wait and read."""
    path, meta_path = folder / f"{split}.npy", folder / f"{split}.json"
    meta = {"clip_ids": clip_ids, "inputs": inputs}
    with exclusive(path):
        current = json.loads(meta_path.read_text()) if meta_path.is_file() and path.is_file() else None
        if current != meta:
            started = time.perf_counter()
            tokens = build()
            with atomic_path(path) as tmp:
                np.save(tmp, tokens)
            write_text_atomic(meta_path, json.dumps(meta))
            log.info("Cached %s features of %d %s clips in %s (%.1f MiB, %.1f s)", folder.name.split("-")[0],
                     len(clip_ids), split, path, path.stat().st_size / 2**20, time.perf_counter() - started)
        else:
            log.info("Using cached %s features of the %s clips: %s", folder.name.split("-")[0], split, path)
    return CachedTokens(folder.name.split("-")[0], folder.name.split("-", 1)[1], path, np.load(path, mmap_mode="r"),
                        clip_ids)


def input_files(prepared, modality: str, clip_ids: list[str]) -> list[Path]:
    layout = prepared.layout
    return [layout.video_frames(c) if modality == "video" else layout.mel_spectrogram(c) for c in clip_ids]


def prepare_feature_caches(model_cfg: DictConfig, model: nn.Module, prepared, *, modalities: tuple[str, ...],
                           splits: tuple[str, ...], device: torch.device, mode: str, batch_size: int,
                           augmentation: Augmentation, cache_dir: Path, digests: dict[str, str] | None = None,
                           precision: PrecisionPlan | None = None
                           ) -> tuple[dict[str, dict[str, CachedTokens]], dict[str, str]]:
    """({split: {modality: CachedTokens}}, {modality: key, or "off: <why>"}) for ``training.feature_cache=mode``.
    ``model_cfg`` (the model's config node) keys the cache with each encoder's settings; ``digests``: {encoder:
    weights digest} the caller computed already (hashing VideoMAE-base's weights takes a quarter second);
    ``precision``: the run's plan, whose encoder precisions the tokens are made in (none: fp32). A key made in
    bf16 says so in ``info`` (``<key> (bf16)``), as the run's feature_cache params then do."""
    from mmbehave.data.prepared import make_dataset

    cached: dict[str, dict[str, CachedTokens]] = {split: {} for split in splits}
    info: dict[str, str] = {}
    if mode == "false":
        return cached, {m: "off: training.feature_cache=false" for m in modalities}
    for modality in modalities:
        encoder = getattr(model, f"{modality}_encoder")
        reason = why_not_cacheable(modality, encoder, augmentation)
        if reason:
            if mode == "true":
                raise ConfigError(f"training.feature_cache=true, but the {modality} features cannot be cached: {reason}; "
                                  "use training.feature_cache=auto to cache only what can be.")
            info[modality] = f"off: {reason}"
            continue
        encoded_in = precision.parts.get(f"{modality}_encoder", "fp32") if precision else "fp32"
        key = encoder_key(modality, model_cfg[f"{modality}_encoder"], encoder, prepared.preprocess, prepared.stats(),
                          (digests or {}).get(f"{modality}_encoder"), encoded_in)
        folder = Path(cache_dir) / f"{modality}-{key}"
        for split in splits:
            dataset = make_dataset(prepared, split, (modality,), prepared.classes)  # never augmented
            inputs = inputs_digest(input_files(prepared, modality, dataset.clip_ids))
            cached[split][modality] = cached_split(
                folder, split, dataset.clip_ids, inputs,
                lambda d=dataset, e=encoder, m=modality, p=encoded_in: encode_split(e, d, m, device, batch_size, p))
        info[modality] = key if encoded_in == "fp32" else f"{key} ({encoded_in})"
    return cached, info
