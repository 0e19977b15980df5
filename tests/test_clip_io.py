"""Clip reading and writing: MP4 round trips keep frames, colours and audio timing; bad files say why."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest
import torch

from mmbehave.core.errors import ClipReadError
from mmbehave.data.clip_io import write_clip
from mmbehave.data.clip_reader import read_audio, read_video_frames

SR = 16000
ONSET_S = 0.25  # the test tone starts here, so a shift in time shows as a moved onset


def colour_frames(n: int, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8, frame i a flat colour distinct from its neighbours."""
    colours = np.stack([(37 * i) % 256 for i in range(n)]), np.stack([255 - (29 * i) % 256 for i in range(n)])
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[..., 0] = colours[0][:, None, None]
    frames[..., 1] = colours[1][:, None, None]
    frames[..., 2] = 128
    return frames


def tone(sample_rate: int = SR, seconds: float = 1.0) -> np.ndarray:
    """Silence, then a 440 Hz tone from ONSET_S on: float32 (samples,)."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return np.where(t >= ONSET_S, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)


def onset(waveform: np.ndarray, sample_rate: int) -> float:
    return float(np.argmax(np.abs(waveform) > 0.05)) / sample_rate


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = colour_frames(16)
    write_clip(path, frames, fps=8, audio=tone(), sample_rate=SR)
    return path, frames


def test_video_round_trip_keeps_every_frame_and_its_colour(clip):
    path, frames = clip
    out = read_video_frames(path, num_frames=16, image_size=32)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.uint8
    expected = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    assert (out.float() - expected).abs().mean(dim=(1, 2, 3)).max() < 4  # near-lossless at crf 12


def test_frames_are_sampled_uniformly_and_within_a_window(clip):
    path, frames = clip
    colours = torch.from_numpy(frames[:, 0, 0]).float()  # (16, 3): one flat colour per source frame

    def picked(out: torch.Tensor) -> list[int]:  # which source frame each output frame is, by its colour
        return [int((colours - pixel).norm(dim=1).argmin()) for pixel in out[:, :, 16, 16].float()]

    assert picked(read_video_frames(path, 8, 32)) == [0, 2, 4, 6, 9, 11, 13, 15]  # linspace(0, 15, 8)
    assert picked(read_video_frames(path, 4, 32, window=(1.0, 2.0))) == [8, 10, 13, 15]  # frames at 1.0..1.875 s
    more = picked(read_video_frames(path, 20, 32))  # more frames asked than exist: some repeat, in order
    assert len(more) == 20 and sorted(more) == more and set(more) == set(range(16))


def test_frames_are_resized_on_the_short_side_then_centre_cropped(tmp_path):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :, :8] = (255, 0, 0)     # a red band at the left edge, cropped away
    frames[:, :, 8:56] = (0, 255, 0)   # green in the middle
    path = tmp_path / "wide.mp4"
    write_clip(path, frames, fps=4)
    out = read_video_frames(path, num_frames=2, image_size=24)  # 48x64 -> 24x32 -> crop 24x24
    assert out.shape == (2, 3, 24, 24)
    assert out[:, 1].float().mean() > 200 and out[:, 0].float().mean() < 40
    assert read_video_frames(path, num_frames=2, image_size=96).shape == (2, 3, 96, 96)  # upscaling works too


def test_audio_round_trip_is_aligned_and_exactly_clip_long(clip):
    path, _ = clip
    audio = read_audio(path, sample_rate=SR, clip_seconds=1.0)
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert abs(onset(audio, SR) - ONSET_S) < 0.002  # AAC priming removed: onset within 2 ms
    lags = np.correlate(audio, tone(), "full")
    assert abs(int(np.argmax(lags)) - (SR - 1)) <= 2
    assert np.corrcoef(audio, tone())[0, 1] > 0.99


def test_audio_is_resampled_and_zero_padded(clip):
    path, _ = clip
    audio = read_audio(path, sample_rate=8000, clip_seconds=1.5)
    assert audio.shape == (12000,)
    assert abs(onset(audio, 8000) - ONSET_S) < 0.002
    # Past the sound (1 s, plus the encoder's last part-filled 1024-sample frame): zero padding.
    assert np.all(audio[int(8000 * 1.07):] == 0)


def test_separate_wav_file_is_read_and_resampled(tmp_path):
    path = tmp_path / "call.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes((tone(44100) * 32767).astype("<i2").tobytes())
    audio = read_audio(path, sample_rate=SR, clip_seconds=0.5)
    assert audio.shape == (8000,)
    assert abs(onset(audio, SR) - ONSET_S) < 0.002


def test_clip_without_audio_track(tmp_path):
    path = tmp_path / "silent.mp4"
    write_clip(path, colour_frames(4), fps=8, audio=None)
    assert read_audio(path, SR, 1.0) is None
    with av.open(str(path)) as container:
        assert not container.streams.audio


def test_write_clip_is_atomic_and_checks_its_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_clip(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8), fps=8)
    with pytest.raises(ValueError, match="uint8"):
        write_clip(tmp_path / "float.mp4", np.zeros((2, 32, 32, 3), np.float32), fps=8)
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp files left
    write_clip(tmp_path / "ok.mp4", colour_frames(2), fps=8)
    assert [p.name for p in tmp_path.iterdir()] == ["ok.mp4"]


def _faststart_copy(source, target) -> None:
    """Remux with the index (moov) first, so that a cut-off copy still opens and the cut hits the frame data."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)


def test_unreadable_clips_raise_clip_read_error_naming_the_file(tmp_path, clip):
    path, _ = clip
    cases = {tmp_path / "missing.mp4": "not found", tmp_path / "random.mp4": "not a readable media file",
             tmp_path / "empty.mp4": "not a readable media file"}
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "empty.mp4").write_bytes(b"")
    _faststart_copy(path, tmp_path / "whole.mp4")
    data = (tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    cases[tmp_path / "cut.mp4"] = "truncated"
    for bad, reason in cases.items():
        with pytest.raises(ClipReadError, match=reason) as caught:
            read_video_frames(bad, 8, 32)
        assert caught.value.path == bad and str(bad) in str(caught.value)
    with pytest.raises(ClipReadError, match="truncated"):
        read_audio(tmp_path / "cut.mp4", SR, 2.0)
    assert read_video_frames(tmp_path / "whole.mp4", 16, 32).shape == (16, 3, 32, 32)  # the remux itself is fine


def test_audio_file_as_video_and_empty_window_are_errors(tmp_path, clip):
    path, _ = clip
    wav = tmp_path / "a.wav"
    with av.open(str(wav), "w") as container:  # a WAV written with PyAV
        stream = container.add_stream("pcm_s16le", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((tone()[None] * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = SR
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert read_audio(wav, SR, 1.0).shape == (SR,)
    with pytest.raises(ClipReadError, match="no video stream"):
        read_video_frames(wav, 8, 32)
    with pytest.raises(ClipReadError, match="no video frames in window"):
        read_video_frames(path, 8, 32, window=(5.0, 6.0))
