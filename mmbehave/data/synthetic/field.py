"""The field-like built-in benchmark (``data=synthetic_field``): the same scenes as ``data=synthetic``, laid out
the way camera-trap data comes from the field (MammAlps-like).

    python -m mmbehave.synthetic data=synthetic_field                   # split_by=site (whole sites per split)
    python -m mmbehave.synthetic data=synthetic_field data.split_by=random   # the same clips, split at random

What differs from the tidy benchmark (``synthetic.py``, ``synthetic_scenes.py``):

* **Sites and cameras.** Six sites, each with one or two fixed cameras. A camera always films the same view
  (its own background texture in its site's palette, brightened or dimmed a little per clip) under its site's
  lighting, and each site has its own mix of species, so a model can partly recognise the place instead of
  the animal. That is the leak a site-grouped split removes.
* **Trigger events.** A camera fires several times at one passing animal: the ``clips_per_event`` clips of an
  event show the same animal (size, coat, voice pitch and loudness) doing the same thing, with their own
  position, heading, speed, distractor, call timing and noise: near-duplicates, with identical labels.
* **Long-tailed behaviours** (``behavior_shares``; exact clip counts), species mixed per site.
* **A multi-label ``action`` column**, ``|``-joined, read off what each clip shows and sounds like (below).
* **Clips without audio** (``missing_audio``, 0.2 in the preset), chosen per clip.
* **Two splits of the same clips** (``split_by``): ``random`` deals clips out at random, ignoring sites and
  events (a naive split: near-duplicates and places leak into val and test); ``site`` puts whole sites in one
  split with the split maker's class-covering search (``group_split.assign_covering``, as ``python -m
  mmbehave.split group_by=site_id`` does), so every class is in every split where the sites allow, and the
  split sizes come as close to ``clips_per_split`` as whole sites allow.

    site  scene                   background (video)   lighting (video)             cams  clips  boar/badger/deer/fox
    S1    alpine meadow, midday   green, fine texture  bright, more contrast        2     22%    10/ 5/55/30 %
    S2    beech forest, shade     dark brown, dappled  dim, flat                    1     20%    45/30/10/15 %
    S3    scree by a loud stream  grey-beige           bright, harsh contrast       2     18%    10/10/30/50 %
    S4    wet meadow at dusk      olive                dim, warm (orange) tint      1     15%    25/20/35/20 %
    S5    forest edge at night    any: infrared, grey  dark, flat, 2x sensor noise  2     13%    30/45/ 5/20 %
    S6    snowy pasture           pale, almost plain   cold (blue) tint, flat       1     12%    20/15/45/20 %

    behaviour  share  motion (video)  vocal activity (audio)                          action labels
    walking    45%    slow            none or 1-2 calls (half the events each)        walking [| vocalizing]
    resting    25%    still           none or 1-2 calls                               standing [| vocalizing]
    calling    15%    slow            4-5 short calls                                 walking | vocalizing
    running    10%    fast            none or 1-2 calls                               running [| vocalizing]
    alarm       5%    still           rapid FM alarm chirps                           standing | alarm_calling

Each clip's actions are one motion label (``standing``: still, ``walking``: slow, ``running``: fast, from the
video) and at most one vocal label (``vocalizing``: any call, ``alarm_calling``: alarm chirps, from the audio).
A clip without audio keeps its vocal label: the animal called, the camera did not record it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from mmbehave.core.errors import ConfigError
from mmbehave.data.clip_io import write_clip
from mmbehave.data.layout import SPLITS
from mmbehave.data.splits.group_split import (
    GroupCounts,
    active_splits,
    assign_covering,
    missing_classes,
)
from mmbehave.data.splits.maker import row_groups, row_labels
from mmbehave.data.splits.options import SplitOptions
from mmbehave.data.synthetic.scenes import (
    BEHAVIORS,
    NOISE_LEVEL,
    SPECIES,
    Lighting,
    SceneSize,
    background_texture,
    render_audio,
    render_video,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    name: str
    scene: str
    cameras: int
    share: float                                # of all clips
    species_mix: tuple[float, ...]              # weight of each species, in SPECIES order
    low: tuple[float, float, float]             # background colour range (RGB)
    high: tuple[float, float, float]
    texture: tuple[float, float]                # background texture strength range
    lighting: Lighting
    noise_level: tuple[float, float] = NOISE_LEVEL


SITES = (
    Site("S1", "alpine meadow, midday", 2, 0.22, (0.10, 0.05, 0.55, 0.30), (60, 115, 35), (90, 150, 60), (6, 14),
         Lighting(gain=1.1, contrast=1.1)),
    Site("S2", "beech forest, shade", 1, 0.20, (0.45, 0.30, 0.10, 0.15), (75, 55, 30), (105, 80, 50), (14, 26),
         Lighting(gain=0.8, contrast=0.9)),
    Site("S3", "scree by a stream", 2, 0.18, (0.10, 0.10, 0.30, 0.50), (120, 118, 108), (150, 148, 138), (8, 16),
         Lighting(gain=1.05, contrast=1.25), noise_level=(0.06, 0.12)),
    Site("S4", "wet meadow at dusk", 1, 0.15, (0.25, 0.20, 0.35, 0.20), (80, 95, 60), (110, 125, 85), (6, 14),
         Lighting(gain=0.8, tint=(1.2, 0.95, 0.7))),
    Site("S5", "forest edge at night (infrared)", 2, 0.13, (0.30, 0.45, 0.05, 0.20), (70, 80, 60), (100, 110, 90),
         (6, 14), Lighting(gain=0.5, contrast=0.8, grey=True, noise=2.0)),
    Site("S6", "snowy pasture", 1, 0.12, (0.20, 0.15, 0.45, 0.20), (175, 180, 185), (200, 205, 210), (3, 8),
         Lighting(contrast=0.8, tint=(0.95, 1.0, 1.08))),
)
BEHAVIOR_SHARES = {"walking": 0.45, "resting": 0.25, "calling": 0.15, "running": 0.10, "alarm": 0.05}
CLIPS_PER_EVENT = (2, 4)
VOCAL_SHARE = 0.5           # events of a behaviour with a few calls ("few") in which the animal calls at all
MOTION_ACTION = {"still": "standing", "slow": "walking", "fast": "running"}
VOCAL_ACTION = {"none": None, "few": "vocalizing", "many": "vocalizing", "alarm": "alarm_calling"}
SPLIT_BY = ("site", "random")
COLUMNS = ["clip_id", "species", "behavior", "action", "site_id", "cam_id", "event_id"]
HEADS = ("species", "behavior", "action")    # what the site split covers in every split
SEPARATOR = "|"
DAYLIGHT = (0.92, 1.08)     # a camera's view brightens or dims this much from clip to clip (clouds, hour)
# Random streams: [seed, key, ...]. The tidy benchmark uses keys 0-3 (its splits, and the clips without audio).
PLAN_KEY, SPLIT_KEY, CLIP_KEY, BODY_KEY, VOICE_KEY, VIEW_KEY = 100, 101, 102, 103, 104, 105


def is_field(settings: Mapping[str, Any]) -> bool:
    return "split_by" in settings


def field_settings(data: Mapping[str, Any]) -> dict:
    """The field keys of a resolved ``data`` config, checked; {} for the tidy benchmark's (no ``split_by``)."""
    if data.get("split_by") is None:
        return {}
    split_by = str(data["split_by"])
    if split_by not in SPLIT_BY:
        raise ConfigError(f"data.split_by={split_by}: use site (whole sites per split) or random (clips at random).")
    shares = dict(data.get("behavior_shares") or BEHAVIOR_SHARES)
    if set(shares) != set(BEHAVIORS):
        raise ConfigError(f"data.behavior_shares names {', '.join(sorted(shares))}; give a share to each of "
                          f"{', '.join(BEHAVIORS)}.")
    try:
        shares = {name: float(share) for name, share in shares.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"data.behavior_shares={shares}: the shares must be numbers.") from None
    if min(shares.values()) <= 0:
        raise ConfigError(f"data.behavior_shares={shares}: every share must be above 0 (a behaviour needs clips).")
    given = list(data.get("clips_per_event") or CLIPS_PER_EVENT)
    try:
        sizes = [int(size) for size in given]
    except (TypeError, ValueError):
        sizes = []
    if len(sizes) != 2 or not 1 <= sizes[0] <= sizes[1]:
        raise ConfigError(f"data.clips_per_event={given}: give [fewest, most] clips per event, e.g. [2, 4].")
    return {"split_by": split_by, "behavior_shares": shares, "clips_per_event": sizes}


def pool_size(settings: Mapping[str, Any]) -> int:
    return sum(int(settings["clips_per_split"][split]) for split in SPLITS)


def field_pool(settings: Mapping[str, Any]) -> pd.DataFrame:
    """Every clip of the dataset, whatever ``split_by``: ``COLUMNS`` plus ``vocal`` (the rendered vocal
    activity), ``site`` and ``camera`` (indices) and ``event`` (index), in event order."""
    rng = np.random.default_rng([settings["seed"], PLAN_KEY])
    total = pool_size(settings)
    shares = settings["behavior_shares"]
    per_behavior = _quotas([shares[name] for name in BEHAVIORS], total)
    events = [(behavior, size) for behavior, count in zip(BEHAVIORS, per_behavior)
              for size in _event_sizes(rng, count, *settings["clips_per_event"])]
    events = [events[i] for i in rng.permutation(len(events))]

    # Sites in turn take the next event, whichever is furthest below its share of the clips placed so far.
    site_shares = np.array([site.share for site in SITES]) / sum(site.share for site in SITES)
    placed, site_of = np.zeros(len(SITES)), []
    for _, size in events:
        site = int(np.argmax(site_shares * (placed.sum() + size) - placed))
        placed[site] += size
        site_of.append(site)
    species_of = [""] * len(events)
    for site_index, site in enumerate(SITES):
        here = [e for e, s in enumerate(site_of) if s == site_index]
        names = [name for name, n in zip(SPECIES, _quotas(site.species_mix, len(here))) for _ in range(n)]
        for e, j in zip(here, rng.permutation(len(here))):
            species_of[e] = names[j]

    rows, events_at = [], {}
    for event, ((behavior, size), site_index, species) in enumerate(zip(events, site_of, species_of)):
        site = SITES[site_index]
        camera = int(rng.integers(site.cameras))
        motion, vocal = BEHAVIORS[behavior]
        if vocal == "few" and rng.random() >= VOCAL_SHARE:
            vocal = "none"
        action = SEPARATOR.join(a for a in (MOTION_ACTION[motion], VOCAL_ACTION[vocal]) if a)
        cam_id = f"{site.name}-C{camera + 1}"
        events_at[cam_id] = events_at.get(cam_id, 0) + 1
        event_id = f"{cam_id}-E{events_at[cam_id]:03d}"
        rows += [(species, behavior, action, site.name, cam_id, event_id, vocal, site_index, camera, event)] * size
    pool = pd.DataFrame(rows, columns=[*COLUMNS[1:], "vocal", "site", "camera", "event"])
    pool.insert(0, "clip_id", [f"clip_{i:05d}" for i in range(len(pool))])
    return pool


def _quotas(weights, total: int) -> list[int]:
    """``total`` shared out in proportion to ``weights``, whole numbers (largest remainder; the first wins ties)."""
    exact = np.asarray(weights, dtype=float) / float(np.sum(weights)) * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[:total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _event_sizes(rng: np.random.Generator, count: int, fewest: int, most: int) -> list[int]:
    """Event sizes between ``fewest`` and ``most`` that add up to ``count`` (a remainder too small for an
    event joins the last one, which may then exceed ``most``; a count below ``fewest`` is one small event)."""
    sizes, left = [], count
    while left > 0:
        size = min(int(rng.integers(fewest, most + 1)), left)
        if 0 < left - size < fewest:  # what would be left cannot make an event: leave enough, or take it all
            size = left - fewest if left - fewest >= fewest else left
        sizes.append(size)
        left -= size
    return sizes


def split_of_clips(pool: pd.DataFrame, settings: Mapping[str, Any]) -> list[str]:
    """Each pool clip's split: ``clips_per_split`` clips dealt at random, or whole sites (``split_by``)."""
    counts = [int(settings["clips_per_split"][split]) for split in SPLITS]
    if settings["split_by"] == "random":
        order = np.random.default_rng([settings["seed"], SPLIT_KEY]).permutation(len(pool))
        split_of = [""] * len(pool)
        for split, chosen in zip(SPLITS, np.split(order, np.cumsum(counts)[:-1])):
            for i in chosen:
                split_of[i] = split
        return split_of
    fractions = {split: n / sum(counts) for split, n in zip(SPLITS, counts)}
    options = SplitOptions(labels=Path("synthetic field plan"), output_dir=Path("."), group_by="site_id",
                           fractions=fractions, seed=int(settings["seed"]), heads=HEADS,
                           label_separator=SEPARATOR, empty_group="error", overwrite=False)
    groups, labels = row_groups(pool, options), row_labels(pool, options)
    group_counts = GroupCounts.build(groups, labels, HEADS)
    if len(group_counts.groups) < len(active_splits(fractions)):
        raise ConfigError(f"data.split_by=site: {len(group_counts.groups)} site(s) hold the "
                          f"{len(pool)} clips, too few for the splits with clips; add clips (data.clips_per_split).")
    assignment = assign_covering(group_counts, fractions, int(settings["seed"]))
    for missing in missing_classes(group_counts, assignment, fractions, noun="site"):
        log.warning("synthetic field data: %s '%s' is not in %s: %s", missing.head, missing.label,
                    ", ".join(missing.missing_from), missing.reason)
    return [assignment[group] for group in groups]


def field_tables(settings: Mapping[str, Any], pool: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The label table of each split: ``COLUMNS``, in clip id order."""
    pool = field_pool(settings) if pool is None else pool
    split_of = np.array(split_of_clips(pool, settings))
    return {split: pool.loc[split_of == split, COLUMNS].reset_index(drop=True) for split in SPLITS}


def field_jobs(settings: Mapping[str, Any], pool: pd.DataFrame, without_audio: set[int],
               video_path: Callable[[str], Path]) -> list[tuple]:
    """One ``write_field_clip`` job per pool clip; ``without_audio`` holds pool indices."""
    return [(video_path(row.clip_id), row.species, row.behavior, row.vocal, row.site, row.camera, row.event, index,
             dict(settings), index not in without_audio) for index, row in enumerate(pool.itertuples())]


def camera_view(seed: int, site_index: int, camera: int, frame_size: int) -> np.ndarray:
    """float (S, S, 3): what a fixed camera films when no animal passes, the same in every clip."""
    site = SITES[site_index]
    rng = np.random.default_rng([seed, VIEW_KEY, site_index, camera])
    return background_texture(rng, frame_size, site.low, site.high, site.texture)


def write_field_clip(job: tuple) -> None:
    path, species, behavior, vocal, site_index, camera, event, index, settings, with_audio = job
    size = SceneSize.from_settings(settings)
    seed, site = settings["seed"], SITES[site_index]
    rng = np.random.default_rng([seed, CLIP_KEY, index])  # the clip's own nuisance, whatever the worker count
    view = camera_view(seed, site_index, camera, size.frame_size) * rng.uniform(*DAYLIGHT)
    frames = render_video(rng, species, behavior, size, background=view, lighting=site.lighting,
                          animal_rng=np.random.default_rng([seed, BODY_KEY, event]))
    audio = render_audio(rng, species, behavior, size, activity=vocal, noise_level=site.noise_level,
                         animal_rng=np.random.default_rng([seed, VOICE_KEY, event]))
    write_clip(path, frames, fps=int(settings["fps"]), audio=audio if with_audio else None,
               sample_rate=size.sample_rate)
