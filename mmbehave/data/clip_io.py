"""Writing camera-trap clips (video + audio) with PyAV: the synthetic benchmarks' MP4s and image bursts.

    write_clip(path, frames (T, H, W, 3) uint8 RGB, fps, audio (samples,) float32 | None, sample_rate)
        -> MP4: H.264 yuv420p video [+ AAC mono audio]

Reading is ``clip_reader``: one pass over the file, only the frames the model needs.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from mmbehave.core.atomic import atomic_path

# x264 settings for writing: near-lossless (crf 12), because at 32x32 every pixel is signal and the
# generator's labels may live in small colour patches; `veryfast` keeps hundreds of clips quick.
# One encoder thread: tiny clips gain nothing from more, and generator workers already use every core.
_H264_OPTIONS = {"crf": "12", "preset": "veryfast", "threads": "1"}
_AAC_BITRATE = 128_000  # generous for mono 16 kHz: keeps the round trip close to the written waveform


# ----------------------------------------------------------------------------------------------- writing

def write_clip(path: str | os.PathLike, frames: np.ndarray, fps: int, audio: np.ndarray | None = None,
               sample_rate: int = 16000) -> None:
    """Write RGB frames (T, H, W, 3) uint8 at ``fps`` and optional mono audio (samples,) in [-1, 1] to an MP4.

    H and W must be even (yuv420p halves the chroma resolution). Atomic: the file appears complete or not at all.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) RGB; got {frames.dtype} {tuple(frames.shape)}")
    if len(frames) == 0:
        raise ValueError("frames is empty: a clip needs at least one frame")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even for yuv420p H.264; got {height}x{width}")

    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=int(fps), options=dict(_H264_OPTIONS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=int(sample_rate))
            audio_stream.layout = "mono"
            audio_stream.bit_rate = _AAC_BITRATE

        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())

        if audio_stream is not None:
            _encode_audio(container, audio_stream, np.asarray(audio, dtype=np.float32), int(sample_rate))


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Feed the encoder whole frames of its own size, time-stamped in samples, then flush it."""
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (samples,); got shape {tuple(audio.shape)}")
    audio = np.clip(audio, -1.0, 1.0)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, len(audio), chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, start:start + chunk]),
                                           format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
