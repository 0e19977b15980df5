"""Where pretrained weights come from, and how fast we give up when they cannot be had.

    name / path ──► local directory? ──yes──► load it
                         │ no
                         ▼
                    local cache? (HF cache / torch hub cache) ──yes──► load it
                         │ no
                         ▼
                    HF_HUB_OFFLINE set? ──yes──► PretrainedWeightsError
                         │ no
                         ▼
                    socket probe to the host (≤ 3 s) ──fails──► PretrainedWeightsError
                         │ ok
                         ▼
                    download, then load

Camera-trap work often happens on field laptops and air-gapped servers. A library call that
retries a dead host for minutes looks like a hang, so the network is only touched after the local
options are exhausted and a quick probe says the host answers. Callers (the encoder factories)
decide what a `PretrainedWeightsError` means: fall back to another encoder, or stop with advice.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

import torch

from mmbehave.core.errors import PretrainedWeightsError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0  # long enough for a slow link, short enough not to look like a hang
_TRUTHY = {"1", "true", "yes", "on"}

Model = TypeVar("Model")


OFFLINE_VARIABLES = ("MMBEHAVE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_mode() -> bool:
    """True when the user (or mmbehave, while it rebuilds a checkpoint's model) has said not to use the network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUTHY for k in OFFLINE_VARIABLES)


def probe_host(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if `url`'s host accepts a TCP connection within `timeout` s, else why not (one line)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as err:  # DNS failure, refused, no route: all mean "offline" here
        return err.strerror or str(err) or type(err).__name__


def one_line(err: BaseException) -> str:
    """First line of an exception's message (library errors can run to pages); its type if empty."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _hub_endpoint() -> str:
    # HF_ENDPOINT lets mirrors stand in for huggingface.co; probe whichever the hub client will use.
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _looks_like_path(name: str) -> bool:
    # Hub ids are "org/name"; anything rooted or relative-dotted is meant as a directory.
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def load_hf_pretrained(loader: Callable[..., Model], name: str, **kwargs: Any) -> Model:
    """Load a Hugging Face model with `loader` (e.g. `VideoMAEModel.from_pretrained`).

    `name` is a local directory or a hub id; `kwargs` go to the loader (e.g. config overrides).
    Raises PretrainedWeightsError with a one-line reason when nothing could be loaded.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            return loader(str(path), local_files_only=True, **kwargs)
        except Exception as err:  # a broken directory is as unusable as a missing one
            raise PretrainedWeightsError(f"local directory {path} could not be loaded: {one_line(err)}") from err
    if _looks_like_path(name):
        raise PretrainedWeightsError(f"no such local directory: {path}")

    try:
        return loader(name, local_files_only=True, **kwargs)
    except OSError as err:
        local_error = err  # not in the HF cache (the usual case offline); try the network below
    except Exception as err:  # in the cache but unusable (partial download, incompatible config)
        raise PretrainedWeightsError(f"the cached copy of '{name}' could not be loaded: {one_line(err)}") from err
    if offline_mode():
        raise PretrainedWeightsError(f"'{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    endpoint = _hub_endpoint()
    failure = probe_host(endpoint)
    if failure is not None:
        raise PretrainedWeightsError(
            f"'{name}' is not in the local Hugging Face cache and {endpoint} is unreachable ({failure})"
        ) from local_error
    logger.info("Downloading '%s' from %s", name, endpoint)
    try:
        return loader(name, **kwargs)
    except Exception as err:
        raise PretrainedWeightsError(f"'{name}' could not be downloaded from {endpoint}: {one_line(err)}") from err


def find_hf_file(name: str, filename: str) -> Path | None:
    """Path of `filename` from model `name` (local directory, HF cache, then hub), or None if absent.

    For small side files such as `preprocessor_config.json`: missing is not an error, the caller
    has a default.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        candidate = path / filename
        return candidate if candidate.is_file() else None
    if _looks_like_path(name):
        return None

    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(name, filename)
    if isinstance(cached, str):
        return Path(cached)
    if offline_mode() or probe_host(_hub_endpoint()) is not None:
        return None
    try:
        return Path(hf_hub_download(name, filename))
    except Exception as err:  # the repository may simply not have this file
        logger.info("No %s for '%s' (%s)", filename, name, one_line(err))
        return None


def resnet18_imagenet_url() -> str:
    """URL of torchvision's ResNet18 ImageNet weights (IMAGENET1K_V1)."""
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1.url


def resnet18_cache_path() -> Path:
    """Where torch hub keeps the ResNet18 weights file: `<torch.hub.get_dir()>/checkpoints/<name>`."""
    filename = Path(urlparse(resnet18_imagenet_url()).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    # weights_only=True: a weights file must never be able to run code on load.
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or holds more than tensors
        raise PretrainedWeightsError(f"{path} could not be read as a weights file: {one_line(err)}") from err
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights; bare state_dicts do not
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{path} does not hold a state_dict of tensors")
    # Weights saved from DataParallel / DDP carry a "module." prefix.
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_resnet18_imagenet_state_dict(weights_path: str | None = None) -> dict[str, torch.Tensor]:
    """ImageNet ResNet18 state_dict (3-channel conv1, 1000-way fc), as torchvision names the keys.

    Looks in `weights_path` when given (and only there), else the torch hub cache, else downloads
    into that cache if download.pytorch.org answers a quick probe.
    Raises PretrainedWeightsError with a one-line reason.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"weights_path {path} does not exist")
        return _read_state_dict(path)

    cached = resnet18_cache_path()
    if cached.is_file():
        return _read_state_dict(cached)
    url = resnet18_imagenet_url()
    failure = "offline mode is on" if offline_mode() else probe_host(url)
    if failure is not None:
        raise PretrainedWeightsError(
            f"{cached.name} is not in the torch hub cache ({cached.parent}) and "
            f"{urlparse(url).hostname} is unreachable ({failure})"
        )
    logger.info("Downloading %s to %s", url, cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # torchvision file names carry the first hex digits of the SHA-256: check them, as torch hub does.
    match = torch.hub.HASH_REGEX.search(cached.name)
    try:
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=match.group(1) if match else None, progress=False)
    except Exception as err:
        raise PretrainedWeightsError(f"{url} could not be downloaded: {one_line(err)}") from err
    return _read_state_dict(cached)


ON_LOAD_FAILURE_CHOICES = ("fallback", "raise")


def check_on_load_failure(value: str, group: str) -> None:
    """Raise ValueError unless `value` is a valid `<group>.on_load_failure` setting."""
    if value not in ON_LOAD_FAILURE_CHOICES:
        raise ValueError(
            f"{group}.on_load_failure must be one of {list(ON_LOAD_FAILURE_CHOICES)}; got {value!r}"
        )


def announce_fallback(reason: str) -> None:
    """Make a fallback impossible to miss: a Python warning (shown once per place) and a log line."""
    warnings.warn(f"PRETRAINED WEIGHTS MISSING: {reason}", RuntimeWarning, stacklevel=3)
    logger.warning("PRETRAINED WEIGHTS MISSING: %s", reason)


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what a VideoMAE folder holds its weights in


def pretrained_weight_tags(resolved: dict) -> dict[str, str]:
    """{tag: value} naming the local files a run's pretrained encoders were loaded from, with their SHA-256, so a
    run says exactly which weights it fine-tuned (an in-domain pretrain's output, a copied checkpoint). Hub ids
    and the torch hub cache are named by their id alone: their files are versioned by their source."""
    from mmbehave.core.digests import file_sha256

    tags = {}
    video, audio = resolved.get("video_encoder") or {}, resolved.get("audio_encoder") or {}
    if video.get("pretrained") and video.get("model_name"):
        folder = Path(str(video["model_name"])).expanduser()
        weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
        tags["pretrained.video_encoder"] = str(folder.resolve() if folder.is_dir() else video["model_name"])
        if weights is not None:
            tags["pretrained.video_encoder_sha256"] = file_sha256(weights)
    if audio.get("pretrained"):
        path = audio.get("weights_path")
        tags["pretrained.audio_encoder"] = str(Path(str(path)).expanduser().resolve()) if path else "torch hub cache"
        if path and Path(str(path)).expanduser().is_file():
            tags["pretrained.audio_encoder_sha256"] = file_sha256(Path(str(path)).expanduser())
    return tags
