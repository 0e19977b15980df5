"""What the review page plays and shows for a clip, made on first view and cached (``<stem>_review_media/``):

    video        the file itself when a browser plays it (MP4/MOV/WebM holding 4:2:0 H.264, VP8, VP9 or AV1), else a
                 small VP8 WebM preview transcoded once (AVI, ASF, MTS, MKV ...); the page plays it muted
    audio        the sound, mono 16-bit WAV at the model's sample rate: what the model heard (whole clip)
    spectrogram  the model's log-mel input drawn (PNG)
    frames       the frames the model samples, side by side (JPEG)

Each file is written atomically under a lock, so two tabs asking at once make it once. Nothing beside the
input clips is touched: previews go to the cache folder only.
"""

from __future__ import annotations

import hashlib
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import ClipReadError
from mmbehave.core.locks import exclusive
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.clip_reader import read_clip
from mmbehave.data.mel import log_mel_spectrogram

PLAYABLE_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}
PLAYABLE_CODECS = {"h264", "vp8", "vp9", "av1"}
PLAYABLE_PIXELS = {"yuv420p", "yuvj420p"}  # Chromium's decoders refuse 4:0:0 greyscale and 4:2:2 / 4:4:4 H.264
PREVIEW_HEIGHT = 360            # small: a preview to judge by, not an archive copy
PREVIEW_MAX_FPS = 15
PREVIEW_BITRATE = 600_000
KINDS = {"video": ".webm", "audio": ".wav", "spectrogram": ".png", "frames": ".jpg"}
MEDIA_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mov": "video/mp4", ".m4v": "video/mp4",
               ".wav": "audio/wav", ".png": "image/png", ".jpg": "image/jpeg"}


def browser_plays(path: Path) -> bool:
    """Whether Chromium plays the file as it is (container and video codec both ones it knows)."""
    try:
        with av.open(str(path)) as container:
            videos = container.streams.video
            return (bool(videos) and container.format.name in PLAYABLE_CONTAINERS
                    and videos[0].codec_context.name in PLAYABLE_CODECS
                    and videos[0].codec_context.pix_fmt in PLAYABLE_PIXELS and path.suffix.lower() != ".mkv")
    except av.error.FFmpegError:
        return False


def has_video(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except av.error.FFmpegError as error:
        raise ClipReadError(path, f"cannot be opened ({error})") from error


class MediaCache:
    """One clip's review media, by kind; ``settings``: the model's preprocessing (frames, sample rate, mel)."""

    def __init__(self, folder: Path, settings: PreprocessSettings) -> None:
        self.folder, self.settings = folder, settings

    def file(self, clip_path: Path, kind: str) -> Path:
        """The file to serve for ``kind``, made now if it is not cached yet (ClipReadError when the clip has none)."""
        if kind == "video" and browser_plays(clip_path):
            return clip_path
        target = self.folder / clip_key(clip_path) / f"{kind}{KINDS[kind]}"
        if target.is_file():
            return target
        with exclusive(target):
            if not target.is_file():
                with atomic_path(target) as tmp:
                    MAKERS[kind](self, clip_path, tmp)
        return target

    def make_video(self, clip: Path, out: Path) -> None:
        if not has_video(clip):
            raise ClipReadError(clip, "no video stream (an audio recording: listen to it instead)")
        transcode_preview(clip, out)

    def make_audio(self, clip: Path, out: Path) -> None:
        waveform = self.waveform(clip, whole=True)
        samples = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(str(out), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(self.settings.sample_rate)
            handle.writeframes(samples.tobytes())

    def make_spectrogram(self, clip: Path, out: Path) -> None:
        s = self.settings
        mel = log_mel_spectrogram(self.waveform(clip, whole=False), s.sample_rate, s.n_mels, s.n_fft, s.hop_length)
        draw_spectrogram(mel, s.hop_length / s.sample_rate, out)

    def make_frames(self, clip: Path, out: Path) -> None:
        from PIL import Image

        s = self.settings
        read = read_clip(clip, num_frames=s.num_frames, image_size=s.image_size, windows=[s.frame_window])
        if not read.has_video:
            raise ClipReadError(clip, "no video stream, so no frames")
        strip = read.frames[0].permute(2, 0, 3, 1).reshape(s.image_size, -1, 3)  # T,C,H,W -> H, T*W, C
        Image.fromarray(strip.numpy()).save(out, format="JPEG", quality=85)

    def waveform(self, clip: Path, whole: bool) -> np.ndarray:
        s = self.settings
        read = read_clip(clip, sample_rate=s.sample_rate, clip_seconds=None if whole else s.clip_seconds,
                         with_video=False)
        if read.waveform is None:
            raise ClipReadError(clip, "no audio stream: this camera recorded no sound")
        return read.waveform


MAKERS = {"video": MediaCache.make_video, "audio": MediaCache.make_audio, "spectrogram": MediaCache.make_spectrogram,
          "frames": MediaCache.make_frames}


def clip_key(path: Path) -> str:
    """Names a clip's cache folder; a changed file (size or time) gets new media."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{path.stem[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def transcode_preview(source: Path, out: Path) -> None:
    """A muted VP8 WebM at most PREVIEW_HEIGHT high and PREVIEW_MAX_FPS: VP8 because every Chromium plays it
    and libvpx encodes it in real time on a laptop core; the sound plays from the audio file beside it."""
    with av.open(str(source)) as inp, av.open(str(out), "w", format="webm") as output:
        stream = inp.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(PREVIEW_MAX_FPS)
        keep_every = max(1, round(float(rate) / PREVIEW_MAX_FPS))
        height = min(PREVIEW_HEIGHT, stream.codec_context.height) // 2 * 2
        width = max(2, round(stream.codec_context.width * height / stream.codec_context.height) // 2 * 2)
        preview_rate = Fraction(rate) / keep_every
        encoder = output.add_stream("libvpx", rate=preview_rate)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.bit_rate = PREVIEW_BITRATE
        encoder.options = {"deadline": "realtime", "cpu-used": "8"}
        written = 0
        for number, frame in enumerate(inp.decode(stream)):
            if number % keep_every:
                continue
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = written, 1 / preview_rate
            written += 1
            output.mux(encoder.encode(small))
        output.mux(encoder.encode(None))


def draw_spectrogram(mel: np.ndarray, seconds_per_column: float, out: Path) -> None:
    from mmbehave.core.figures import plt

    figure, axes = plt.subplots(figsize=(6, 2.2), dpi=100)
    axes.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                extent=(0, mel.shape[1] * seconds_per_column, 0, mel.shape[0]))
    axes.set_xlabel("seconds")
    axes.set_ylabel("mel band")
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)
