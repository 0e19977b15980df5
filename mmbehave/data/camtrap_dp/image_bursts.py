"""Still images of one camera-trap event (a burst) -> one silent MP4 clip, so preprocessing reads it as any clip.

    write_burst([img1.jpg, img2.jpg, ...] in time order, clip.mp4, fps=2, max_side=1280) -> number of frames

The first image sets the frame size: scaled down so its longer side is at most ``max_side``, then rounded down
to even sides (H.264 yuv420p needs them). Every image is fitted into that frame keeping its aspect ratio and
centred on black (a camera switching to a night mode may change the size mid-burst). Images are decoded with
PyAV (JPEG, PNG, TIFF, ...: whatever FFmpeg reads); EXIF orientation is not applied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from mmbehave.core.errors import ClipReadError
from mmbehave.data.clip_io import write_clip


def read_image(path: Path) -> av.VideoFrame:
    """The image's (first) frame; ClipReadError when the file is missing or not an image FFmpeg reads."""
    if not path.is_file():
        raise ClipReadError(path, "file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipReadError(path, "not an image (no picture in the file)")
            for frame in container.decode(video=0):
                return frame
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise ClipReadError(path, f"not a readable image ({error})") from error
    raise ClipReadError(path, "the image could not be decoded (empty or truncated)")


def frame_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled to fit ``max_side`` (never up) and rounded down to even, at least 2."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def fit(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The frame scaled (area-averaged) to fit inside width x height, centred on black: (height, width, 3) uint8."""
    scale = min(width / frame.width, height / frame.height)
    inner_w, inner_h = max(1, min(width, round(frame.width * scale))), max(1, min(height, round(frame.height * scale)))
    image = frame.reformat(width=inner_w, height=inner_h, format="rgb24", interpolation="AREA").to_ndarray()
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    canvas[top:top + inner_h, left:left + inner_w] = image
    return canvas


def burst_frames(paths: Sequence[Path], max_side: int) -> np.ndarray:
    """(len(paths), H, W, 3) uint8 RGB, in the order given."""
    if not paths:
        raise ValueError("a burst needs at least one image")
    first = read_image(Path(paths[0]))
    width, height = frame_size(first.width, first.height, int(max_side))
    frames = [fit(first, width, height)]
    frames += [fit(read_image(Path(path)), width, height) for path in paths[1:]]
    return np.stack(frames)


def write_burst(paths: Sequence[Path], target: str | os.PathLike, fps: float, max_side: int) -> int:
    """Write the images as an MP4 (no audio) at ``fps``; atomic. Returns the number of frames."""
    frames = burst_frames(paths, max_side)
    write_clip(target, frames, fps=max(1, round(fps)))
    return len(frames)
