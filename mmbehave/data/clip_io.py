"""Reading and writing camera-trap clips (video + audio) with PyAV.

    write_clip(path, frames (T, H, W, 3) uint8 RGB, fps, audio (samples,) float32 | None, sample_rate)
        -> MP4: H.264 yuv420p video [+ AAC mono audio]
    read_video_frames(path, num_frames, image_size, window) -> uint8 tensor (num_frames, 3, image_size, image_size)
    iter_video_windows(path, num_frames, image_size, windows) -> the same for each window, in one decoding pass
    media_seconds(path)                                     -> the clip's length in seconds
    read_audio(path, sample_rate, clip_seconds)             -> float32 (round(sample_rate * clip_seconds),) | None

Every decoding problem (missing file, not a media file, truncated data, no frames) raises ``ClipReadError``
naming the file, so a batch job can record the reason and go on with the next clip.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import ClipReadError

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


# ----------------------------------------------------------------------------------------------- video

def read_video_frames(path: str | os.PathLike, num_frames: int, image_size: int,
                      window: tuple[float, float] | None = None) -> torch.Tensor:
    """Sample ``num_frames`` frames uniformly over the clip (or ``window`` = (start_s, end_s)), resize and crop.

    Frames are picked by index, ``linspace(first, last, num_frames)`` over the frames whose timestamp lies in
    the window, so a clip with exactly ``num_frames`` frames comes back whole and shorter clips repeat frames.
    Each is resized (area-averaged) so its short side is ``image_size``, then centre-cropped to a square.
    Returns uint8 (num_frames, 3, image_size, image_size).
    """
    [frames] = iter_video_windows(path, num_frames, image_size, [window])
    return frames


def iter_video_windows(path: str | os.PathLike, num_frames: int, image_size: int,
                       windows: Sequence[tuple[float, float] | None]) -> Iterator[torch.Tensor]:
    """``read_video_frames`` for each of ``windows`` (inclusive (start_s, end_s), or None: the whole clip), with
    one decoding pass over the file: a long clip cut into segments is decoded once, not once per segment.

    Yields each window's frames, in the order given, as soon as the decoder has passed them; only frames a
    window not yet yielded still needs are kept, so memory stays a few windows' worth however long the clip.
    """
    path = Path(path)
    times = _frame_times(path)  # pts -> seconds on the file's timeline
    picks = [_window_picks(path, times, num_frames, window) for window in windows]
    wanted = set().union(*picks)
    last_use = {pts: index for index, window_picks in enumerate(picks) for pts in window_picks}
    decoded: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    next_window = 0
    reformatter = VideoReformatter()  # one scaler for the clip: setting one up costs more than using it
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                if frame.pts not in wanted or frame.pts in seen:
                    continue
                seen.add(frame.pts)
                decoded[frame.pts] = _resize_crop(reformatter, frame, image_size)
                while next_window < len(picks) and all(pts in decoded for pts in picks[next_window]):
                    yield torch.stack([decoded[pts] for pts in picks[next_window]])
                    next_window += 1
                    decoded = {pts: image for pts, image in decoded.items() if last_use[pts] >= next_window}
                if next_window == len(picks):
                    return
        except av.error.FFmpegError as error:
            raise ClipReadError(path, f"video decoding failed ({error}); the file may be truncated or corrupt") from error
    missing = wanted - seen
    raise ClipReadError(path, f"{len(missing)} of the {len(wanted)} sampled frames could not be decoded; "
                              "the file may be truncated or corrupt")


def _window_picks(path: Path, times: dict[int, float], num_frames: int,
                  window: tuple[float, float] | None) -> list[int]:
    """The pts of the ``num_frames`` frames sampled uniformly (by index) from those inside ``window``."""
    if window is not None:
        start, end = float(window[0]), float(window[1])
        in_window = {pts: t for pts, t in times.items() if start <= t <= end}
        if not in_window:
            raise ClipReadError(path, f"no video frames in window [{start}, {end}] s "
                                      f"(frames span {min(times.values()):.3f}-{max(times.values()):.3f} s)")
        times = in_window
    ordered = sorted(times, key=times.get)
    return [ordered[i] for i in np.linspace(0, len(ordered) - 1, num_frames).round().astype(int)]


def media_seconds(path: str | os.PathLike) -> float:
    """How long the clip lasts, from the file's start: to the end of its last video frame (the frames are what
    the camera saw; the audio track ends within encoder padding of them), or, for a file without video (an
    acoustic recorder's), the length its container declares. 0.0 when the file declares no length."""
    path = Path(path)
    if has_video_stream(path):
        times = sorted(_frame_times(path).values())
        frame_step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        return times[-1] + frame_step
    with _open(path) as container:
        if container.duration is not None:
            return container.duration / av.time_base
        stream = container.streams.audio[0] if container.streams.audio else None
        if stream is not None and stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return 0.0


def has_video_stream(path: str | os.PathLike) -> bool:
    """Whether the file has a video stream (an audio recorder's .wav / .m4a / .flac has none)."""
    with _open(Path(path)) as container:
        return bool(container.streams.video)


def _open(path: Path):
    if not path.is_file():
        raise ClipReadError(path, "file not found")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise ClipReadError(path, f"not a readable media file ({error})") from error


def _frame_times(path: Path) -> dict[int, float]:
    """Timestamps of every video frame, read from the packets alone (no decoding): {pts: seconds}.

    Seconds count from the file's start (the earliest stream), as ``read_audio``'s samples do, so a window
    means the same moment for both. Packets the demuxer marks as discarded (before an MP4 edit list's start)
    are never shown, so they are left out.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise ClipReadError(path, "no video stream")
        stream = container.streams.video[0]
        pts_list = []
        n_packets = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                n_packets += 1
                if packet.is_discard:
                    continue
                if packet.pts is None:
                    raise ClipReadError(path, "video packets carry no timestamps; remux the clip to MP4")
                pts_list.append(packet.pts)
        except av.error.FFmpegError as error:
            raise ClipReadError(path, f"reading video packets failed ({error}); the file may be truncated") from error
        # Read while the container is open: a stream's attributes point into FFmpeg's memory, which closing
        # frees, so reading them afterwards gave None or garbage depending on what reused that memory.
        origin = _file_start(container)
        time_base, declared_frames = stream.time_base, stream.frames
    if not pts_list:
        raise ClipReadError(path, "the video stream has no frames")
    if time_base is None:
        raise ClipReadError(path, "the video stream has no time base; remux the clip to MP4")
    # A cut-off file still demuxes cleanly up to the cut: compare with the frame count its header declares.
    if declared_frames and n_packets < declared_frames:
        raise ClipReadError(path, f"truncated: the header declares {declared_frames} video frames but only "
                                  f"{n_packets} are in the file")
    return {pts: float(pts * time_base) - origin for pts in pts_list}


def _file_start(container) -> float:
    """Seconds at which the file's earliest stream starts (0 for most MP4s)."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _resize_crop(reformatter: VideoReformatter, frame: av.VideoFrame, size: int) -> torch.Tensor:
    """Decoded frame -> (3, size, size) uint8 RGB: short side scaled to ``size``, then the centre square.

    Scaling happens in libswscale during the RGB conversion (area averaging, so downscaling is antialiased):
    microseconds per frame, and no torch thread pool in the loop (its wake-ups cost milliseconds per call).
    """
    scale = size / min(frame.height, frame.width)
    height, width = max(size, round(frame.height * scale)), max(size, round(frame.width * scale))
    image = reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return torch.from_numpy(np.ascontiguousarray(image[top:top + size, left:left + size].transpose(2, 0, 1)))


# ----------------------------------------------------------------------------------------------- audio

def read_audio(path: str | os.PathLike, sample_rate: int, clip_seconds: float) -> np.ndarray | None:
    """Decode the first audio stream of ``path`` (a video's own track or an audio file), mono at ``sample_rate``.

    Returns float32 (round(sample_rate * clip_seconds),): cropped, or padded with trailing zeros; ``None`` if
    the file has no audio stream. Sample 0 is time 0 of the file's timeline: encoder priming (AAC's 1024
    samples) is removed by the demuxer's edit list / skip-samples data, and any leftover offset of the first
    decoded frame is cut (before time 0) or zero-padded (after it), so sound stays in sync with the video.
    """
    path = Path(path)
    length = int(round(sample_rate * clip_seconds))
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        origin = _file_start(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        offset = None  # seconds from the file's start to the first decoded sample
        collected = n_packets = n_samples = 0
        finished = True
        try:
            for packet in container.demux(stream):
                n_packets += packet.size > 0
                for frame in packet.decode():
                    n_samples += frame.samples
                    if offset is None:
                        offset = (frame.time - origin) if frame.time is not None else 0.0
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                        collected += out.samples
                if collected >= length + sample_rate:  # enough, with slack for a trim at the start
                    finished = False
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as error:
            raise ClipReadError(path, f"audio decoding failed ({error}); the file may be truncated or corrupt") from error
        # A cut-off file decodes cleanly up to the cut: compare with what its header declares, which counts
        # packets, except for PCM (AVI, WAV), where it counts samples.
        declared = stream.frames
        found, unit = (n_samples, "samples") if stream.codec_context.name.startswith("pcm_") else (n_packets, "packets")
        if finished and declared and found < declared:
            raise ClipReadError(path, f"truncated: the header declares {declared} audio {unit} but only "
                                      f"{found} are in the file")

    waveform = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shift = int(round((offset or 0.0) * sample_rate))
    if shift < 0:
        waveform = waveform[-shift:]
    elif shift > 0:
        waveform = np.concatenate([np.zeros(shift, np.float32), waveform])
    out = np.zeros(length, np.float32)
    out[:min(length, len(waveform))] = waveform[:length]
    return out
