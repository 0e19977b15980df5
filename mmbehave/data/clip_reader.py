"""Reading a clip's frames and sound in one pass over the file, decoding only what the model needs.

    open once ─► demux every packet (video kept, audio decoded + resampled until the clip's length is had)
      ─► the frames each window samples (by index over the frames' timestamps)
      ─► decode from the keyframe before the first sampled frame; frames no sampled frame depends on
         (non-reference frames: most B-frames) are skipped by the decoder unless sampled themselves
      ─► sampled frames resized (short side) and centre-cropped

Skipping changes nothing in the frames that come out (a non-reference frame is, by definition, not used to
decode any other), so the tensors are the ones a full decode gives (tested on every clip format the tests
write); it roughly halves the decoding of camera-trap H.264 with B-frames. A file the decoder cannot serve
this way is decoded in full, as a fallback.

What a camera writes is normal, not an error: empty (dropped-frame) packets, a header frame count that
disagrees by a frame, no frame count at all (ASF). "Truncated" is kept for files that end early.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from mmbehave.core.errors import ClipReadError

Window = tuple[float, float] | None   # (start_s, end_s) inclusive, or None: the whole clip
# Frames (or audio packets) a header may declare beyond what the file holds before it counts as truncated:
# cameras count a frame they drop at the end, and some muxers count one more.
COUNT_SLACK = 1


@dataclass
class ClipRead:
    """What one pass over a file gave: the windows read and, per window, uint8 (num_frames, 3, size, size);
    the waveform or None."""

    has_video: bool
    windows: list[Window] = field(default_factory=list)
    frames: list[torch.Tensor] = field(default_factory=list)
    waveform: np.ndarray | None = None
    seconds: float = 0.0   # the clip's length: to the end of its last video frame, else the container's


def read_clip(path: str | os.PathLike, *, num_frames: int = 0, image_size: int = 0,
              windows: Sequence[Window] | Callable[[float], Sequence[Window]] = (None,),
              sample_rate: int | None = None, clip_seconds: float | None = None, with_video: bool = True,
              threads: int = 1, skip_unneeded: bool = True) -> ClipRead:
    """Frames for each of ``windows`` (or of ``windows(clip length in seconds)``: segments of a long clip) and,
    with ``sample_rate``, the sound, mono at ``sample_rate``, cropped or zero-padded to ``clip_seconds`` (None:
    the whole track; the waveform is None without an audio stream). ``with_video`` false reads the sound only
    (a clip's separate audio file). ``skip_unneeded`` false decodes every frame from the start (what the
    shortcut is measured and tested against). Raises ClipReadError naming the file for anything it cannot read."""
    path = Path(path)
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video and with_video else None
        audio = container.streams.audio[0] if container.streams.audio and sample_rate else None
        if video is not None:
            video.thread_type = "SLICE" if threads > 1 else "NONE"  # frame threads would ignore per-packet skips
            video.thread_count = threads
        sound = _AudioTrack(path, audio, container, sample_rate, clip_seconds) if audio is not None else None
        packets = _demux(path, container, video, sound)
        result = ClipRead(has_video=bool(container.streams.video))
        times = _frame_times(path, container, video, packets) if video is not None else None
        result.seconds = _seconds(times) if times else _declared_seconds(container)
        result.windows = list(windows(result.seconds) if callable(windows) else windows)
        if times:
            picks = [_window_picks(path, times, num_frames, window) for window in result.windows]
            frames = _decode_sampled(path, video, packets, set().union(*picks), image_size, skip_unneeded)
            result.frames = [torch.stack([frames[pts] for pts in window_picks]) for window_picks in picks]
        if sound is not None:
            result.waveform = sound.waveform()
    return result


def read_video_frames(path: str | os.PathLike, num_frames: int, image_size: int, window: Window = None) -> torch.Tensor:
    """``num_frames`` frames sampled uniformly (by index) over the clip or ``window`` = (start_s, end_s), each
    resized so its short side is ``image_size`` and centre-cropped: uint8 (num_frames, 3, size, size). A clip
    with exactly ``num_frames`` frames comes back whole; shorter clips repeat frames."""
    clip = read_clip(path, num_frames=num_frames, image_size=image_size, windows=[window])
    if not clip.has_video:
        raise ClipReadError(Path(path), "no video stream")
    return clip.frames[0]


def read_audio(path: str | os.PathLike, sample_rate: int, clip_seconds: float) -> np.ndarray | None:
    """The first audio stream (a video's own track or an audio file), mono at ``sample_rate``, cropped or
    zero-padded to ``clip_seconds``: float32; None if the file has no audio stream."""
    return read_clip(path, sample_rate=sample_rate, clip_seconds=clip_seconds, with_video=False).waveform


def _open(path: Path):
    if not path.is_file():
        raise ClipReadError(path, "file not found")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise ClipReadError(path, f"not a readable media file ({error})") from error


def _demux(path: Path, container, video, sound: _AudioTrack | None) -> list:
    """The video stream's packets, in decode order (empty ones included: they count as frames the camera
    dropped); audio packets go to ``sound`` as they come."""
    streams = [s for s in (video, sound.stream if sound else None) if s is not None]
    packets = []
    if not streams:
        return packets
    try:
        for packet in container.demux(streams):
            if video is not None and packet.stream.index == video.index:
                packets.append(packet)
            elif sound is not None and packet.stream.index == sound.stream.index:
                sound.take(packet)
    except av.error.FFmpegError as error:
        raise ClipReadError(path, f"reading packets failed ({error}); the file may be truncated or corrupt") from error
    return packets


def _frame_times(path: Path, container, stream, packets: list) -> dict[int, float]:
    """{pts: seconds from the file's start} of every frame shown. Packets the demuxer marks as discarded (before
    an MP4 edit list's start) are never shown; empty packets hold no frame."""
    shown = [p for p in packets if p.size > 0 and not p.is_discard]
    if not shown:
        raise ClipReadError(path, "the video stream has no frames")
    if any(p.pts is None for p in shown):
        raise ClipReadError(path, "video packets carry no timestamps; remux the clip to MP4")
    if stream.time_base is None:
        raise ClipReadError(path, "the video stream has no time base; remux the clip to MP4")
    declared = stream.frames
    if declared and len(packets) + COUNT_SLACK < declared:  # a cut-off file still demuxes cleanly up to the cut
        raise ClipReadError(path, f"truncated: the header declares {declared} video frames but only "
                                  f"{len(packets)} are in the file")
    origin = _file_start(container)
    return {p.pts: float(p.pts * stream.time_base) - origin for p in shown}


def _seconds(times: dict[int, float]) -> float:
    ordered = sorted(times.values())
    step = float(np.median(np.diff(ordered))) if len(ordered) > 1 else 0.0
    return ordered[-1] + step


def _declared_seconds(container) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    stream = container.streams.audio[0] if container.streams.audio else None
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _file_start(container) -> float:
    """Seconds at which the file's earliest stream starts (0 for most MP4s)."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _window_picks(path: Path, times: dict[int, float], num_frames: int, window: Window) -> list[int]:
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


def _decode_sampled(path: Path, stream, packets: list, wanted: set[int], image_size: int,
                    skip: bool) -> dict[int, torch.Tensor]:
    """{pts: (3, size, size) uint8} for the ``wanted`` frames, decoding as little as the codec allows."""
    try:
        if skip:
            frames = _decode(stream, packets, wanted, image_size, skip=True)
            if wanted <= frames.keys():
                return frames
        frames = _decode(stream, packets, wanted, image_size, skip=False)  # the codec did not serve the shortcut
    except av.error.FFmpegError as error:
        raise ClipReadError(path, f"video decoding failed ({error}); the file may be truncated or corrupt") from error
    if not wanted <= frames.keys():
        raise ClipReadError(path, f"{len(wanted - frames.keys())} of the {len(wanted)} sampled frames could not be "
                                  "decoded; the file may be truncated or corrupt")
    return frames


def _decode(stream, packets: list, wanted: set[int], image_size: int, skip: bool) -> dict[int, torch.Tensor]:
    context = stream.codec_context
    first = 0
    if skip:  # start at the keyframe before the first packet of a sampled frame
        needed = next((i for i, p in enumerate(packets) if p.pts in wanted), 0)
        first = max((i for i in range(needed + 1) if packets[i].is_keyframe), default=0)
    reformatter = VideoReformatter()  # one scaler for the clip: setting one up costs more than using it
    frames: dict[int, torch.Tensor] = {}
    for packet in [*packets[first:], None]:
        if packet is not None and packet.size == 0:
            continue
        if skip:
            context.skip_frame = "DEFAULT" if packet is None or packet.pts in wanted else "NONREF"
        for frame in context.decode(packet):
            if frame.pts in wanted and frame.pts not in frames:
                frames[frame.pts] = _resize_crop(reformatter, frame, image_size)
        if len(frames) == len(wanted):
            break
    context.flush_buffers()
    context.skip_frame = "DEFAULT"
    return frames


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


class _AudioTrack:
    """Decodes and resamples an audio stream's packets as the demuxer hands them over, until it has the clip's
    length (plus a second of slack for a trim at the start); counts every packet for the truncation check.

    Sample 0 is time 0 of the file's timeline: encoder priming (AAC's 1024 samples) is removed by the demuxer's
    edit list / skip-samples data, and any leftover offset of the first decoded frame is cut (before time 0) or
    zero-padded (after it), so sound stays in sync with the video."""

    def __init__(self, path: Path, stream, container, sample_rate: int, clip_seconds: float) -> None:
        self.path, self.stream, self.sample_rate = path, stream, int(sample_rate)
        self.length = None if clip_seconds is None else int(round(self.sample_rate * float(clip_seconds)))
        self.origin = _file_start(container)
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        self.chunks: list[np.ndarray] = []
        self.offset: float | None = None  # seconds from the file's start to the first decoded sample
        self.collected = self.packets = self.samples = 0
        self.enough = False

    def take(self, packet) -> None:
        self.packets += packet.size > 0
        if self.enough:
            return
        try:
            for frame in packet.decode():
                self.samples += frame.samples
                if self.offset is None:
                    self.offset = (frame.time - self.origin) if frame.time is not None else 0.0
                for out in self.resampler.resample(frame):
                    self.chunks.append(out.to_ndarray().reshape(-1))
                    self.collected += out.samples
        except av.error.FFmpegError as error:
            raise ClipReadError(self.path, f"audio decoding failed ({error}); the file may be truncated or "
                                           "corrupt") from error
        self.enough = self.length is not None and self.collected >= self.length + self.sample_rate

    def waveform(self) -> np.ndarray:
        """float32 (round(sample_rate * clip_seconds),), or the whole track without clip_seconds."""
        for out in self.resampler.resample(None):
            self.chunks.append(out.to_ndarray().reshape(-1))
        if not self.enough:
            # A cut-off file decodes cleanly up to the cut: compare with what its header declares, which counts
            # packets, except for PCM (AVI, WAV), where it counts samples.
            declared = self.stream.frames
            pcm = self.stream.codec_context.name.startswith("pcm_")
            found, unit = (self.samples, "samples") if pcm else (self.packets, "packets")
            slack = COUNT_SLACK * (self.stream.codec_context.frame_size or 1024) if pcm else COUNT_SLACK
            if declared and found + slack < declared:
                raise ClipReadError(self.path, f"truncated: the header declares {declared} audio {unit} but only "
                                               f"{found} are in the file")
        waveform = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        shift = int(round((self.offset or 0.0) * self.sample_rate))
        if shift < 0:
            waveform = waveform[-shift:]
        elif shift > 0:
            waveform = np.concatenate([np.zeros(shift, np.float32), waveform])
        if self.length is None:
            return waveform
        out = np.zeros(self.length, np.float32)
        out[:min(self.length, len(waveform))] = waveform[:self.length]
        return out
