"""Media files in the formats camera traps, phones and acoustic recorders write, made with PyAV for the tests.

``write_media`` writes a moving pattern and/or a tone with any container, video codec and audio codec PyAV
has (x264, x265, VP9, MJPEG; AAC, Opus, PCM, FLAC), so the tests read real files of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class MediaFormat:
    name: str
    suffix: str                        # file extension, which also picks the container
    video_codec: str | None = "libx264"
    pix_fmt: str = "yuv420p"
    width: int = 96
    height: int = 64
    fps: int = 10
    seconds: float = 1.0
    audio_codec: str | None = "aac"
    audio_rate: int = 16000
    audio_format: str = "fltp"         # the sample format the audio encoder takes
    container: str | None = None       # override the container picked from the suffix
    dropped: tuple[int, ...] = ()      # frames after which the camera drops one (a gap in the timestamps;
                                       # AVI stores it as an empty packet its header still counts)
    video_options: tuple[tuple[str, str], ...] = ()


# What the field produces (see FIELD-NOTES and the trust issue): each must decode, every time.
FIELD_FORMATS = (
    MediaFormat("avi_mjpeg_pcm8k", ".avi", "mjpeg", "yuvj420p", audio_codec="pcm_s16le", audio_rate=8000,
                audio_format="s16"),
    MediaFormat("mp4_1080p_aac48k", ".mp4", width=1920, height=1080, seconds=0.5, audio_rate=48000),
    MediaFormat("mov_h264_aac", ".mov"),
    MediaFormat("mp4_hevc", ".mp4", "libx265", audio_codec=None),
    MediaFormat("webm_vp9_opus", ".webm", "libvpx-vp9", audio_codec="libopus", audio_rate=48000, audio_format="flt"),
    MediaFormat("mp4_portrait", ".mp4", width=64, height=112),
    MediaFormat("mp4_greyscale", ".mp4", pix_fmt="gray", audio_codec=None),
    MediaFormat("mp4_0.3s", ".mp4", seconds=0.3),
)

# A decade of camera models (the real-archive issue): old AVI / ASF codecs, camcorder and phone containers, and
# H.264 with B-frames (which the reader's non-reference skipping must leave bit-identical). Upper-case suffixes:
# cameras write them.
CAMERA_FORMATS = (
    MediaFormat("avi_mpeg4_dropped_frames", ".AVI", "mpeg4", audio_codec="pcm_s16le", audio_format="s16",
                seconds=2.0, dropped=(5, 12)),
    MediaFormat("asf_msmpeg4v3", ".ASF", "msmpeg4", audio_codec=None, container="asf"),
    MediaFormat("wmv_wmv2", ".wmv", "wmv2", audio_codec=None, container="asf"),
    MediaFormat("mts_h264_aac", ".MTS", container="mpegts"),
    MediaFormat("m2ts_mpeg2", ".m2ts", "mpeg2video", audio_codec=None, container="mpegts"),
    MediaFormat("3gp_h264_aac", ".3gp", container="3gp"),
    MediaFormat("mpg_mpeg2", ".mpg", "mpeg2video", audio_codec="mp2", audio_format="s16", container="mpeg"),
    MediaFormat("mkv_h264", ".mkv", audio_codec=None),
    MediaFormat("m4v_h264", ".m4v", audio_codec=None, container="mp4"),
    MediaFormat("mp4_h264_bframes", ".MP4", seconds=3.0, video_options=(("bf", "3"), ("g", "12"))),
)


def _frames(fmt: MediaFormat) -> np.ndarray:
    """A bright square moving left to right over a dark background: (T, H, W, 3) uint8."""
    count = max(1, round(fmt.fps * fmt.seconds))
    frames = np.full((count, fmt.height, fmt.width, 3), 30, np.uint8)
    side = max(4, min(fmt.height, fmt.width) // 3)
    for t in range(count):
        left = int((fmt.width - side) * t / max(1, count - 1))
        top = (fmt.height - side) // 2
        frames[t, top:top + side, left:left + side] = (220, 180, 60)
    return frames


def _tone(fmt: MediaFormat) -> np.ndarray:
    t = np.arange(int(fmt.audio_rate * fmt.seconds)) / fmt.audio_rate
    return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def write_media(path: Path, fmt: MediaFormat) -> Path:
    """Write ``fmt`` to ``path`` (suffix added if missing) and return the path."""
    path = path.with_suffix(fmt.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=fmt.container) as container:
        video = None
        if fmt.video_codec:
            video = container.add_stream(fmt.video_codec, rate=fmt.fps)
            video.width, video.height, video.pix_fmt = fmt.width, fmt.height, fmt.pix_fmt
            if fmt.video_codec == "libx265":
                video.options = {"x265-params": "log-level=error"}
            if fmt.video_options:
                video.options = dict(fmt.video_options)
        audio = None
        if fmt.audio_codec:
            audio = container.add_stream(fmt.audio_codec, rate=fmt.audio_rate)
            audio.layout = "mono"
        if video is not None:
            source_format = "gray" if fmt.pix_fmt == "gray" else "rgb24"
            pts = 0
            for index, image in enumerate(_frames(fmt)):
                pixels = image[..., 0] if source_format == "gray" else image
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=source_format)
                if fmt.dropped:
                    frame.pts = pts
                    pts += 2 if index in fmt.dropped else 1
                container.mux(video.encode(frame))
            container.mux(video.encode())
        if audio is not None:
            _write_audio(container, audio, _tone(fmt), fmt)
    return path


def _write_audio(container, stream, waveform: np.ndarray, fmt: MediaFormat) -> None:
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, len(waveform), chunk):
        piece = waveform[None, start:start + chunk]
        if fmt.audio_format == "s16":
            piece = (piece * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format=fmt.audio_format, layout="mono")
        frame.sample_rate = fmt.audio_rate
        frame.pts = start
        frame.time_base = Fraction(1, fmt.audio_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
