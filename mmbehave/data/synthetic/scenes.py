"""The built-in benchmark's scenes: what each species and behaviour looks and sounds like.

Each label is split across the two modalities on purpose, so that only a model using both gets it right:

    species      body (video)                 call voice (audio)     confused by a video-only | audio-only model
    wild_boar    compact, dark plain coat     low grunt (rich)       badger                   | red_deer
    badger       compact, dark plain coat     high whistle (pure)    wild_boar                | red_fox
    red_deer     elongated, light banded      low grunt (rich)       red_fox                  | wild_boar
    red_fox      elongated, light banded      high whistle (pure)    red_deer                 | badger

    behaviour    motion (video)       vocal activity (audio)
    resting      still                1-2 calls                alarm                    | walking, running
    walking      slow                 1-2 calls                calling                  | resting, running
    running      fast                 1-2 calls                -                        | resting, walking
    alarm        still (freezing)     rapid FM alarm chirps    resting                  | -
    calling      slow                 4-5 short calls          walking                  | -

Nuisance that carries no label: background texture and colour, animal position, size, orientation and
colour within its family, a small distractor moving at a random speed, background noise level, an insect buzz above the
calls' band, call loudness and timing.

The field preset (``synthetic_field.py``) reuses these scenes through optional keyword arguments: a fixed
background per camera, a site's lighting (``Lighting``), a silent vocal activity (``"none"``), a site's noise
level, and an ``animal_rng`` that draws the animal's own traits (size, coat, voice pitch, loudness) apart from
the clip's nuisance, so the clips of one trigger event show the same animal. Without them the scenes, and
their random streams, are exactly the benchmark's above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPECIES = {  # name: (body shape, voice)
    "wild_boar": ("compact", "low"),
    "badger": ("compact", "high"),
    "red_deer": ("elongated", "low"),
    "red_fox": ("elongated", "high"),
}
BEHAVIORS = {  # name: (motion, vocal activity)
    "resting": ("still", "few"),
    "walking": ("slow", "few"),
    "running": ("fast", "few"),
    "alarm": ("still", "alarm"),
    "calling": ("slow", "many"),
}
# Speeds in frame widths per second: slow and fast stay well apart whatever the clip length.
SPEED_RANGE = {"still": (0.0, 0.0), "slow": (0.6, 0.8), "fast": (1.9, 2.4)}
EXPOSURE_SAMPLES = 4  # sub-frame positions averaged per frame: motion blur
ASPECT = {"compact": 1.0, "elongated": 2.3}  # long axis / short axis of the body ellipse
VOICE_F0 = {"low": (280.0, 380.0), "high": (1250.0, 1650.0)}  # fundamental frequency ranges (Hz)
VOICE_HARMONICS = {"low": (1.0, 0.8, 0.6, 0.45, 0.3, 0.2), "high": (1.0, 0.15)}  # timbre: relative amplitudes
SENSOR_NOISE = 3.0  # grey levels (standard deviation) of per-pixel sensor noise
NOISE_LEVEL = (0.01, 0.06)  # range of the background noise's peak amplitude
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # luma weights: an infrared camera records grey


@dataclass(frozen=True)
class SceneSize:
    num_frames: int
    frame_size: int
    sample_rate: int
    clip_seconds: float

    @classmethod
    def from_settings(cls, settings) -> SceneSize:
        """From the generator settings (``fps``, ``clip_seconds``, ``raw_frame_size``, ``raw_sample_rate``)."""
        fps, seconds = int(settings["fps"]), float(settings["clip_seconds"])
        return cls(num_frames=max(2, int(round(fps * seconds))), frame_size=int(settings["raw_frame_size"]),
                   sample_rate=int(settings["raw_sample_rate"]), clip_seconds=seconds)


@dataclass(frozen=True)
class Lighting:
    """How a camera's exposure changes the whole scene (animal and background alike)."""

    gain: float = 1.0                           # brightness factor
    contrast: float = 1.0                       # spread around mid-grey (128) before the gain
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel (R, G, B) factor: warm dusk light
    grey: bool = False                          # infrared night shot: no colour
    noise: float = 1.0                          # sensor noise, times SENSOR_NOISE

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """float (..., 3) RGB in 0..255 (not clipped) -> the same under this light."""
        lit = ((frames - 128.0) * self.contrast + 128.0) * self.gain * np.asarray(self.tint, dtype=np.float32)
        if self.grey:
            lit = np.repeat((lit @ GREY)[..., None], 3, axis=-1)
        return lit.astype(np.float32)


def render_video(rng: np.random.Generator, species: str, behavior: str, size: SceneSize, *,
                 background: np.ndarray | None = None, lighting: Lighting | None = None,
                 animal_rng: np.random.Generator | None = None) -> np.ndarray:
    """uint8 (T, S, S, 3) RGB frames of one animal on a textured background.

    ``background``: float (S, S, 3) scene to use instead of a random one (a fixed camera's view);
    ``lighting``: the camera's exposure, applied before the sensor noise; ``animal_rng``: draws the animal's
    size and coat instead of ``rng`` (the same animal in several clips). Left out: the benchmark's scenes."""
    shape, motion = SPECIES[species][0], BEHAVIORS[behavior][0]
    s, t = size.frame_size, size.num_frames
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    background = background_texture(rng, s) if background is None else np.asarray(background, dtype=np.float32)
    animal = rng if animal_rng is None else animal_rng

    radius = s * animal.uniform(0.15, 0.19) * np.sqrt(ASPECT[shape]) ** 0.5
    long_axis, short_axis = radius * np.sqrt(ASPECT[shape]), radius / np.sqrt(ASPECT[shape])
    heading = rng.uniform(0, 2 * np.pi)
    seconds_per_frame = size.clip_seconds / t
    per_frame = rng.uniform(*SPEED_RANGE[motion]) * s * seconds_per_frame  # pixels per frame
    margin = long_axis + 1
    position = rng.uniform(margin, s - margin, size=2)
    velocity = per_frame * np.array([np.cos(heading), np.sin(heading)])
    coat = _coat(animal, shape)

    dot_position = rng.uniform(0, s, size=2)
    dot_heading = rng.uniform(0, 2 * np.pi)
    dot_velocity = rng.uniform(0, 0.6) * s * seconds_per_frame * np.array([np.cos(dot_heading), np.sin(dot_heading)])
    dot_colour = rng.uniform(0, 255, size=3)

    frames = np.empty((t, s, s, 3), dtype=np.float32)
    for i in range(t):
        # Bounce off the borders so fast animals stay in view.
        for axis in range(2):
            if not margin <= position[axis] <= s - margin:
                velocity[axis] *= -1
                position[axis] = np.clip(position[axis], margin, s - margin)
        angle = np.arctan2(velocity[1], velocity[0]) if per_frame > 0 else heading
        frame = np.zeros_like(background)
        # The shutter stays open over the frame interval: moving animals smear, fast ones more (motion blur).
        for sub in np.linspace(0, 1, EXPOSURE_SAMPLES, endpoint=False):
            alpha, along = _ellipse(xx, yy, position + sub * velocity, long_axis, short_axis, angle)
            body = coat(along / long_axis)
            frame += (background * (1 - alpha[..., None]) + body * alpha[..., None]) / EXPOSURE_SAMPLES
        dot = _ellipse(xx, yy, dot_position % s, 1.0, 1.0, 0.0)[0] * 0.6
        frames[i] = frame * (1 - dot[..., None]) + dot_colour * dot[..., None]
        position = position + velocity
        dot_position = dot_position + dot_velocity
    noise = SENSOR_NOISE
    if lighting is not None:
        frames, noise = lighting.apply(frames), SENSOR_NOISE * lighting.noise
    return np.clip(frames + rng.normal(0, noise, frames.shape), 0, 255).astype(np.uint8)


def background_texture(rng: np.random.Generator, s: int, low=(80, 90, 50), high=(140, 150, 110),
                       strength=(6, 18)) -> np.ndarray:
    """float (S, S, 3) smooth random texture: coarse noise upsampled, around a random colour between ``low``
    and ``high`` (by default mid-brightness, earthy), its strength drawn from ``strength``."""
    coarse = rng.normal(0, 1, size=(6, 6, 3)).astype(np.float32)
    index = np.linspace(0, 5, s)
    rows = np.array([np.interp(index, np.arange(6), coarse[:, j, c]) for j in range(6) for c in range(3)])
    rows = rows.reshape(6, 3, s).transpose(2, 0, 1)  # (s, 6, 3)
    texture = np.stack([np.stack([np.interp(index, np.arange(6), rows[i, :, c]) for c in range(3)], -1) for i in range(s)])
    base = rng.uniform(list(low), list(high))
    return np.clip(base + texture * rng.uniform(*strength), 0, 255).astype(np.float32)


def _coat(rng: np.random.Generator, shape: str):
    """Body colouring as a function of the position along the body (-1 tail .. 1 head).

    Compact species wear a dark, plain coat; elongated species a light coat with dark bands. Colour jitter
    within each family is nuisance."""
    if shape == "compact":
        colour = rng.uniform(20, 60) + rng.normal(0, 8, size=3)
        return lambda along: np.broadcast_to(colour, (*along.shape, 3))
    light = rng.uniform(180, 230) + rng.normal(0, 10, size=3)
    dark = light * rng.uniform(0.25, 0.4)
    bands = rng.uniform(2.5, 3.5)
    phase = rng.uniform(0, 2 * np.pi)

    def paint(along: np.ndarray) -> np.ndarray:
        stripe = (np.sin(along * np.pi * bands + phase) > 0.3)[..., None]
        return np.where(stripe, dark, light)

    return paint


def _ellipse(xx, yy, centre, long_axis, short_axis, angle) -> tuple[np.ndarray, np.ndarray]:
    """Soft-edged (anti-aliased) ellipse mask in [0, 1], and each pixel's coordinate along the long axis."""
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    distance = np.sqrt((u / long_axis) ** 2 + (v / short_axis) ** 2)
    return np.clip((1.0 - distance) * min(long_axis, short_axis) + 0.5, 0, 1), u


def render_audio(rng: np.random.Generator, species: str, behavior: str, size: SceneSize, *,
                 activity: str | None = None, noise_level: tuple[float, float] = NOISE_LEVEL,
                 animal_rng: np.random.Generator | None = None) -> np.ndarray:
    """float32 (samples,) mono waveform in [-1, 1]: calls over background noise.

    ``activity``: the vocal activity to render instead of the behaviour's (``"none"``: no call);
    ``noise_level``: range of the background noise's level (a loud stream nearby); ``animal_rng``: draws the
    voice's pitch and loudness instead of ``rng``. Left out: the benchmark's sounds."""
    voice = SPECIES[species][1]
    activity = BEHAVIORS[behavior][1] if activity is None else activity
    animal = rng if animal_rng is None else animal_rng
    sr, n = size.sample_rate, int(round(size.sample_rate * size.clip_seconds))
    time = np.arange(n) / sr
    # Background: brown-ish noise (wind) at a random level.
    noise = np.cumsum(rng.normal(0, 1, n)) * 0.02 + rng.normal(0, 1, n)
    noise = noise - np.convolve(noise, np.ones(64) / 64, mode="same") * 0.5
    audio = noise / (np.abs(noise).max() + 1e-9) * rng.uniform(*noise_level)
    if rng.random() < 0.5:  # insect buzz, above the calls' band
        start, length = rng.uniform(0, 0.7) * n, rng.uniform(0.2, 0.6) * n
        buzz = np.sin(2 * np.pi * rng.uniform(5000, 6500) * time) * (1 + np.sin(2 * np.pi * 40 * time)) / 2
        gate = ((np.arange(n) >= start) & (np.arange(n) < start + length)).astype(np.float32)
        audio += buzz * gate * rng.uniform(0.02, 0.08)

    f0 = animal.uniform(*VOICE_F0[voice])
    loudness = animal.uniform(0.25, 0.5)
    for onset, duration, sweep in _call_schedule(rng, activity, size.clip_seconds):
        audio += loudness * _call(time, onset, duration, f0, VOICE_HARMONICS[voice], sweep)
    return np.clip(audio, -1, 1).astype(np.float32)


def _call_schedule(rng: np.random.Generator, activity: str, seconds: float) -> list[tuple[float, float, float]]:
    """(onset s, duration s, pitch sweep factor) of each call for a vocal activity (``"none"``: no call)."""
    if activity == "none":
        return []
    if activity == "alarm":  # rapid, short, downward-sweeping chirps
        count, duration, sweep = rng.integers(5, 8), 0.05, 0.5
        gap = seconds / count
        return [(i * gap + rng.uniform(0, gap - duration), duration, sweep) for i in range(count)]
    count = rng.integers(1, 3) if activity == "few" else rng.integers(4, 6)
    duration = rng.uniform(0.08, 0.12) if activity == "many" else rng.uniform(0.12, 0.2)
    slots = rng.choice(int(seconds // (duration + 0.02)), size=min(count, int(seconds // (duration + 0.02))), replace=False)
    return [(slot * (duration + 0.02), duration, 1.0) for slot in sorted(slots)]


def _call(time, onset, duration, f0, harmonics, sweep) -> np.ndarray:
    """One harmonic call with a smooth envelope; ``sweep`` < 1 glides the pitch down to f0 * sweep."""
    local = time - onset
    inside = (local >= 0) & (local < duration)
    progress = np.clip(local / duration, 0, 1)
    frequency = f0 * (1 + (sweep - 1) * progress) * (1.3 if sweep != 1 else 1.0)
    phase = 2 * np.pi * np.cumsum(frequency) / (1 / (time[1] - time[0]))
    wave = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics)) / sum(harmonics)
    envelope = np.sin(np.pi * progress) ** 2
    return wave * envelope * inside
