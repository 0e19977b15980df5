"""Waveform -> log-mel spectrogram, the audio encoder's input.

    log_mel_spectrogram(waveform (samples,), sample_rate, n_mels, n_fft, hop_length) -> float32 (n_mels, frames)

Power spectrogram of a periodic Hann window, centred frames (zero-padded by n_fft // 2 at both ends, so
``frames = 1 + samples // hop_length`` and frame k is centred on sample k * hop_length), Slaney-style mel
filters over 0 .. sample_rate / 2, then the **natural log** with a floor of ``MEL_FLOOR`` (1e-10 power,
about -100 dB): silence maps to the constant ln(1e-10) ~ -23.03 instead of -inf.
The filter bank and window come from ``transformers.audio_utils``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

MEL_FLOOR = 1e-10  # power floor before the log; also the value silent input gets


@lru_cache(maxsize=8)
def _filters(sample_rate: int, n_mels: int, n_fft: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) mel filter bank, built once per setting (every clip shares it)."""
    filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                              max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney",
                              mel_scale="slaney")
    filters.flags.writeable = False
    return filters


@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    window = window_function(n_fft, "hann", periodic=True)
    window.flags.writeable = False
    return window


def log_mel_spectrogram(waveform: np.ndarray, sample_rate: int, n_mels: int, n_fft: int,
                        hop_length: int) -> np.ndarray:
    """Mono float waveform (samples,) -> natural-log mel power spectrogram, float32 (n_mels, 1 + samples // hop_length)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or len(waveform) == 0:
        raise ValueError(f"waveform must be a non-empty mono array (samples,); got shape {tuple(waveform.shape)}")
    power = spectrogram(waveform, _window(n_fft), frame_length=n_fft, hop_length=hop_length, fft_length=n_fft,
                        power=2.0, center=True, pad_mode="constant")  # zero padding: fine for clips < n_fft
    # The mel projection is done here rather than by spectrogram(mel_filters=...), whose matrix product goes
    # through multi-threaded BLAS: with one worker per core that oversubscribes the CPU and ran 20x slower.
    # einsum's own loop is single-threaded and takes ~1 ms.
    mel = np.einsum("fm,ft->mt", _filters(sample_rate, n_mels, n_fft), power)
    return np.log(np.maximum(mel, MEL_FLOOR)).astype(np.float32)
