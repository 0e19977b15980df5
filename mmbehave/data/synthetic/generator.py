"""The built-in benchmark dataset: real MP4 clips (H.264 + AAC) and label tables, then real preprocessing.

    python -m mmbehave.synthetic                           # generate data/synthetic (the default data.root)
    python -m mmbehave.synthetic data.seed=1 data.root=/tmp/synth1

Training with ``data=synthetic`` calls ``ensure_synthetic_dataset`` first, so the first run generates it.
What the clips contain, and why fusion matters on them, is in ``synthetic_scenes.py``. A config with
``split_by`` (``data=synthetic_field``) makes the field-like dataset of ``synthetic_field.py`` instead: sites,
cameras, trigger events, long-tailed behaviours and multi-label actions, from the same scenes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.core.errors import InputError
from mmbehave.core.guards import refuse_foreign_folder
from mmbehave.core.locks import exclusive
from mmbehave.core.progress import show_progress
from mmbehave.data.clip_io import write_clip
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.preprocessing import preprocess_from_config
from mmbehave.data.synthetic.field import (
    field_jobs,
    field_pool,
    field_settings,
    field_tables,
    is_field,
    pool_size,
    write_field_clip,
)
from mmbehave.data.synthetic.scenes import (
    BEHAVIORS,
    SPECIES,
    SceneSize,
    render_audio,
    render_video,
)

log = logging.getLogger(__name__)

# What the raw clips depend on; a change regenerates them. (Preprocessing settings are the preprocessor's.)
GENERATOR_KEYS = ("seed", "clips_per_split", "fps", "clip_seconds", "raw_frame_size", "raw_sample_rate")
SETTINGS_FILE = "synthetic.json"


def generator_settings(data_cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(data_cfg, resolve=True)
    settings = {key: container[key] for key in GENERATOR_KEYS}
    # Recorded only when set, so that datasets generated before the setting existed stay valid.
    if container.get("missing_audio"):
        settings["missing_audio"] = float(container["missing_audio"])
    return settings | field_settings(container)  # the field keys, for data=synthetic_field only


def clips_without_audio(settings: dict, split_index: int, count: int) -> set[int]:
    """Which clips of a split are written without an audio track: ``missing_audio`` of them, seeded."""
    share = float(settings.get("missing_audio", 0.0))
    if not 0.0 <= share <= 1.0:
        from mmbehave.core.errors import ConfigError

        raise ConfigError(f"data.missing_audio={share} must be a share in [0, 1] of the clips written without audio.")
    chosen = np.random.default_rng([settings["seed"], split_index, 1]).permutation(count)[:round(share * count)]
    return {int(i) for i in chosen}


def clip_plan(settings: dict) -> dict[str, pd.DataFrame]:
    """Per split: clip ids and labels, every (species, behaviour) pair equally often, in a seeded order
    (the field dataset: its label tables, ``synthetic_field.field_tables``)."""
    if is_field(settings):
        return field_tables(settings)
    combos = list(itertools.product(SPECIES, BEHAVIORS))
    plan = {}
    for split_index, split in enumerate(SPLITS):
        count = int(settings["clips_per_split"][split])
        labels = [combos[i % len(combos)] for i in range(count)]
        order = np.random.default_rng([settings["seed"], split_index]).permutation(count)
        plan[split] = pd.DataFrame({
            "clip_id": [f"{split}_{i:05d}" for i in range(count)],
            "species": [labels[j][0] for j in order],
            "behavior": [labels[j][1] for j in order],
        })
    return plan


def _write_one(job: tuple) -> None:
    path, species, behavior, rng_key, settings, with_audio = job
    fps, size = int(settings["fps"]), SceneSize.from_settings(settings)
    rng = np.random.default_rng(rng_key)  # one stream per clip: the same clip whatever the worker count
    frames = render_video(rng, species, behavior, size)
    audio = render_audio(rng, species, behavior, size)
    # The sound is still rendered when it is left out, so that the clip's random stream (and its video) is the
    # same at every missing_audio share.
    write_clip(path, frames, fps=fps, audio=audio if with_audio else None, sample_rate=size.sample_rate)


def render_all(write, jobs: list, num_workers: int, progress: bool, desc: str) -> None:
    """``write(job)`` for every job, in ``num_workers`` processes (1: in this one), with a progress bar."""
    executor = ProcessPoolExecutor(num_workers) if num_workers > 1 and jobs else None
    mapper = executor.map(write, jobs, chunksize=16) if executor else map(write, jobs)
    try:
        for _ in tqdm(mapper, total=len(jobs), desc=desc, unit="clip", disable=not progress):
            pass
    finally:
        if executor:
            executor.shutdown()


def generate_raw(root: Path, settings: dict, num_workers: int = 2, progress: bool = True) -> None:
    """Write ``raw/videos/*.mp4``, ``raw/metadata/*.csv`` and the settings file (last: it marks completion)."""
    layout = DatasetLayout(root)
    if is_field(settings):  # one pool of clips, then split: the same clips whatever split_by
        pool = field_pool(settings)
        plan = field_tables(settings, pool)
        silent_clips = clips_without_audio(settings, len(SPLITS), pool_size(settings))
        write, jobs = write_field_clip, field_jobs(settings, pool, silent_clips,
                                                   lambda clip_id: layout.raw_dir / layout.default_video_path(clip_id))
    else:
        plan = clip_plan(settings)
        silent = {split: clips_without_audio(settings, split_index, len(plan[split]))
                  for split_index, split in enumerate(SPLITS)}
        write, jobs = _write_one, [(layout.raw_dir / layout.default_video_path(row.clip_id), row.species, row.behavior,
                                    [settings["seed"], split_index, index], settings, index not in silent[split])
                                   for split_index, split in enumerate(SPLITS)
                                   for index, row in enumerate(plan[split].itertuples())]
    render_all(write, jobs, num_workers, progress, "generating clips")
    for split, table in plan.items():
        with atomic_path(layout.metadata_csv(split)) as tmp:
            table.to_csv(tmp, index=False)
    write_text_atomic(layout.raw_dir / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True))


UNLABELED_STREAM = 99  # the clips' random streams are [seed, split index, clip]; 0-2 are train, val and test


def write_unlabeled_pool(folder: Path, data_cfg: DictConfig, count: int, num_workers: int = 2,
                         progress: bool = True) -> pd.DataFrame:
    """``count`` clips of the built-in benchmark that no split holds (their own random stream): a pool of clips
    for distill's ``distill.unlabeled``. Their true labels go to ``truth.csv`` in ``folder``, which no command
    reads (a measurement may, to score the teacher's labels)."""
    settings = generator_settings(data_cfg)
    if is_field(settings):
        from mmbehave.core.errors import ConfigError

        raise ConfigError("unlabeled= is written for data=synthetic only (the field-like dataset's clips come from "
                          "one pool split by site).")
    combos = list(itertools.product(SPECIES, BEHAVIORS))
    picks = np.random.default_rng([settings["seed"], UNLABELED_STREAM]).integers(len(combos), size=count)
    truth = pd.DataFrame({"path": [f"clip_{i:05d}.mp4" for i in range(count)],
                          "species": [combos[p][0] for p in picks], "behavior": [combos[p][1] for p in picks]})
    jobs = [(folder / row.path, row.species, row.behavior, [settings["seed"], UNLABELED_STREAM, index], settings, True)
            for index, row in enumerate(truth.itertuples()) if not (folder / row.path).is_file()]
    folder.mkdir(parents=True, exist_ok=True)
    render_all(_write_one, jobs, num_workers, progress, "generating unlabelled clips")
    with atomic_path(folder / "truth.csv") as tmp:
        truth.to_csv(tmp, index=False)
    return truth


def ensure_synthetic_dataset(data_cfg: DictConfig, num_workers: int = 2, progress: bool | None = None) -> Path:
    """Generate the raw clips if missing or made with other settings, then preprocess (skips done clips).

    A folder the generator did not make is never touched: one that holds anything without the generator's
    settings file is refused (probably your own data: ``data=processed``). A new dataset is written beside the
    folder and swapped in, so a crash leaves the old one (or none), never a half-emptied folder."""
    root = Path(data_cfg.root)
    settings = generator_settings(data_cfg)
    show = show_progress() if progress is None else progress
    with exclusive(root):  # one generator per dataset folder: parallel trials may all start on a fresh machine
        current = generated_settings(root)
        if current != settings:
            refuse_foreign_folder(root, key="data.root", made_by_us=lambda folder: generated_settings(folder) is not None,
                                  what="generate the synthetic benchmark",
                                  hint=f"To train on your own clips there, add data=processed (python -m mmbehave.train "
                                       f"data=processed data.root={root}); for the benchmark, choose a new or empty "
                                       "data.root.")
            if current is not None:
                refuse_added_files(root)
                log.info("Synthetic settings changed: generating anew beside %s, then swapping it in", root)
            log.info("Generating the synthetic benchmark in %s (seed %s)", root, settings["seed"])
            generate_and_swap_in(root, settings, num_workers=num_workers, progress=show)
        summary = preprocess_from_config(data_cfg, num_workers=num_workers, progress=show)  # as for real data
    if summary.failed:
        raise RuntimeError(f"preprocessing the synthetic clips in {root} failed:\n{summary.format()}")
    return root


def generated_settings(root: Path) -> dict | None:
    """The settings the generator recorded in ``root`` (its marker, written last), or None: not generated here."""
    marker = DatasetLayout(root).raw_dir / SETTINGS_FILE
    try:
        return json.loads(marker.read_text()) if marker.is_file() else None
    except (OSError, ValueError):
        return None


def refuse_added_files(root: Path) -> None:
    """Files the generator and preprocessing never write (a user's notes) make a generated folder the user's too:
    InputError naming them, rather than deleting them with the old clips."""
    layout = DatasetLayout(root)
    ours = [layout.raw_dir / SETTINGS_FILE, layout.metadata_dir, layout.raw_dir / "videos", layout.processed_dir]
    added = [path for path in sorted(root.rglob("*")) if path.is_file() and not path.name.startswith(".")
             and not any(path == mine or mine in path.parents for mine in ours)]
    added += [path for path in sorted((layout.raw_dir / "videos").rglob("*")) if path.suffix != ".mp4"]
    added += [path for path in sorted(layout.metadata_dir.glob("*")) if path.name not in {f"{s}.csv" for s in SPLITS}]
    if added:
        shown = ", ".join(str(path.relative_to(root)) for path in added[:4]) + (f" (+{len(added) - 4} more)"
                                                                             if len(added) > 4 else "")
        raise InputError(f"data.root={root} was generated with other settings, but also holds files the generator did "
                         f"not write ({shown}); move them out first (nothing was changed), or choose another data.root.")


def generate_and_swap_in(root: Path, settings: dict, num_workers: int, progress: bool) -> None:
    """Generate into ``.<name>.generating`` beside ``root``, then rename it into place (the old folder, if any,
    is renamed aside first and deleted last). Both names are the generator's own: leftovers of a killed run
    are removed under the dataset lock."""
    staging, retired = root.parent / f".{root.name}.generating", root.parent / f".{root.name}.replaced"
    for leftover in (staging, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    generate_raw(staging, settings, num_workers=num_workers, progress=progress)
    if root.exists():
        os.replace(root, retired)
    os.replace(staging, root)
    if retired.exists():
        shutil.rmtree(retired)
