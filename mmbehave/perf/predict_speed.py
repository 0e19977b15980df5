"""Predicting field clips: the real pipeline against its bound, and the reader before this pipeline, in one run.

    clips     realistic field clips, generated once into data/benchmark_clips/: 1280x720 H.264 at 24 fps,
              ~20 s, a keyframe every 10 s, B-frames, half with an AAC track (what MammAlps-like cameras write)
    predict   clips/s of predict's archive pass (workers reading, the model batching) on them
    bound     the slower of (a) decoding just the frames the model needs, one process per worker, and (b) the
              model alone on ready tensors
    serial    the way predict worked before: clips read in the main process, every frame decoded

    memory    peak memory of a predict process (and its workers) over N tiny clips and 10 x N: flat when nothing
              is held per clip beyond a batch
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmbehave.core.atomic import atomic_path
from mmbehave.data.clip_inputs import PreprocessSettings, ProcessedClip, preprocess_clip
from mmbehave.data.clip_reader import read_clip
from mmbehave.data.mel import log_mel_spectrogram
from mmbehave.predicting.archive import predict_archive, window_probabilities
from mmbehave.predicting.clip_loading import (
    ClipFiles,
    ClipWindow,
    Segmenting,
    usable_cores,
)


@dataclass(frozen=True)
class FieldClips:
    count: int = 24             # clips predicted (the first ``unique`` are generated, the others are links to them)
    unique: int = 6
    seconds: float = 20.0
    width: int = 1280
    height: int = 720
    fps: int = 24
    keyframe_seconds: float = 10.0


def field_clips(folder: Path, spec: FieldClips) -> list[Path]:
    """The clips (generated the first time, a few seconds each with x264 veryfast)."""
    paths = []
    for index in range(spec.count):
        path = folder / f"field_{spec.width}x{spec.height}_{spec.seconds:g}s_{index}.mp4"
        if not path.is_file():
            if index < spec.unique:
                _write_field_clip(path, spec, seed=index, with_audio=index % 2 == 0)
            else:
                os.link(paths[index % spec.unique], path)
        paths.append(path)
    return paths


def _write_field_clip(path: Path, spec: FieldClips, seed: int, with_audio: bool) -> None:
    rng = np.random.default_rng(seed)
    frames = int(spec.seconds * spec.fps)
    background = rng.integers(40, 120, (spec.height // 8, spec.width // 8, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), np.uint8))  # a textured scene
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.options = {"preset": "veryfast", "g": str(int(spec.keyframe_seconds * spec.fps)), "bf": "3",
                         "keyint_min": str(int(spec.keyframe_seconds * spec.fps)), "sc_threshold": "0"}
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        if audio is not None:
            audio.layout = "mono"
        for t in range(frames):
            image = background.copy()
            x = int((spec.width - 200) * t / frames)
            image[300:420, x:x + 200] = (200, 170, 90)  # an animal crossing
            image += rng.integers(0, 6, image.shape, dtype=np.uint8)  # sensor noise
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        if audio is not None:
            sound = (0.2 * np.sin(2 * np.pi * 300 * np.arange(int(16000 * spec.seconds)) / 16000)).astype(np.float32)
            for start in range(0, len(sound), 1024):
                frame = av.AudioFrame.from_ndarray(sound[None, start:start + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                container.mux(audio.encode(frame))
            container.mux(audio.encode())


@dataclass(frozen=True)
class _Present:
    """What window_probabilities asks of a clip: which modalities it has."""

    has_audio: bool
    has_video: bool = True


def predict_speed(trained, clips: list[Path], batch_size: int, workers: int, repeats: int = 2) -> dict:
    """clips/s of the real archive pass, the bound, and the serial full-decode reader, each the best of
    ``repeats`` (in turns: a neighbour on the machine slows them alike)."""
    settings, whole = trained.preprocess, Segmenting(trained.preprocess.clip_seconds)
    best = {"predict": 0.0, "decode": 0.0, "model": 0.0, "serial": 0.0}
    for _ in range(repeats):
        files = ClipFiles(clips, settings, whole, decoder_threads=max(1, usable_cores() // max(workers, 1)))
        run = predict_archive(trained, files, device="cpu", batch_size=batch_size, num_workers=workers,
                              on_batch=lambda *_: None, progress=False)
        best["predict"] = max(best["predict"], len(clips) / run.seconds)
        best["decode"] = max(best["decode"], _decode_rate(clips, settings, skip=True))
        best["model"] = max(best["model"], _model_rate(trained, clips[0], batch_size))
        best["serial"] = max(best["serial"], _serial_rate(trained, clips, settings, batch_size))
    decode_bound = best["decode"] * min(workers, usable_cores())
    bound = min(decode_bound, best["model"])
    return {"clips": len(clips), "workers": workers, "predict_clips_per_s": best["predict"],
            "decode_one_process_clips_per_s": best["decode"], "model_alone_clips_per_s": best["model"],
            "bound_clips_per_s": bound, "ratio": best["predict"] / bound,
            "serial_full_decode_clips_per_s": best["serial"], "speedup_over_serial": best["predict"] / best["serial"]}


def _decode_rate(clips: list[Path], settings: PreprocessSettings, skip: bool) -> float:
    started = time.perf_counter()
    for path in clips:
        read_clip(path, num_frames=settings.num_frames, image_size=settings.image_size,
                  windows=[settings.frame_window], sample_rate=settings.sample_rate,
                  clip_seconds=settings.clip_seconds, skip_unneeded=skip)
    return len(clips) / (time.perf_counter() - started)


def _model_rate(trained, clip: Path, batch_size: int) -> float:
    window = ClipWindow(0.0, None, preprocess_clip(clip, None, trained.preprocess))
    batch = [(_Present(True), window)] * batch_size
    window_probabilities(trained, batch, "cpu")  # warm-up
    started = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        window_probabilities(trained, batch, "cpu")
    return rounds * batch_size / (time.perf_counter() - started)


def _serial_rate(trained, clips: list[Path], settings: PreprocessSettings, batch_size: int) -> float:
    """The reader before the archive pipeline: in the main process, clip after clip, every frame decoded."""
    started = time.perf_counter()
    for first in range(0, len(clips), batch_size):
        windows = []
        for path in clips[first:first + batch_size]:
            read = read_clip(path, num_frames=settings.num_frames, image_size=settings.image_size,
                             windows=[settings.frame_window], sample_rate=settings.sample_rate,
                             clip_seconds=settings.clip_seconds, skip_unneeded=False)
            sound = read.waveform if read.waveform is not None else np.zeros(
                int(round(settings.sample_rate * settings.clip_seconds)), np.float32)
            mel = log_mel_spectrogram(sound, settings.sample_rate, settings.n_mels, settings.n_fft, settings.hop_length)
            clip = ProcessedClip(read.frames[0], mel, True, read.waveform is not None)
            windows.append((_Present(clip.has_audio), ClipWindow(0.0, None, clip)))
        window_probabilities(trained, windows, "cpu")
    return len(clips) / (time.perf_counter() - started)


def predict_memory(checkpoint: Path, source_clips: list[Path], counts: tuple[int, ...], work: Path) -> dict:
    """Peak memory (MiB, the largest of the predict process and its workers) over folders of ``counts`` tiny
    clips (hard links to ``source_clips``), each predicted by a real ``python -m mmbehave.predict``."""
    peaks = {}
    for count in counts:
        folder = work / f"tiny_{count}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            target = folder / f"clip_{index:05d}.mp4"
            if not target.exists():
                os.link(source_clips[index % len(source_clips)], target)
        script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                  "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
        command = [sys.executable, "-m", "mmbehave.predict", f"checkpoint={checkpoint}", f"input={folder}",
                   f"output={work / f'tiny_{count}.csv'}", f"hydra.run.dir={work / f'run_{count}'}"]
        finished = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, check=True,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
        peaks[count] = float(finished.stdout.strip().splitlines()[-1])
        shutil.rmtree(folder)
    low, high = min(counts), max(counts)
    return {**{f"peak_mib_{count}_clips": peak for count, peak in peaks.items()}, "clips_low": low, "clips_high": high,
            "peak_low": peaks[low], "peak_high": peaks[high], "growth": peaks[high] / peaks[low]}
