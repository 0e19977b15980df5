"""The field-like built-in benchmark (``data=synthetic_field``): sites, cameras and trigger events, long-tailed
behaviours, multi-label actions, clips without audio, and two splits (by site, at random) of the same clips.
Also: adding it left the tidy benchmark (``data=synthetic``) exactly as it was."""

from __future__ import annotations

import hashlib
import itertools

import av
import numpy as np
import pandas as pd
import pytest
from helpers import compose_config

from mmbehave.core.errors import ConfigError, DataError
from mmbehave.data.clip_reader import read_video_frames
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.metadata import check_groups_in_one_split
from mmbehave.data.synthetic.field import BEHAVIOR_SHARES, COLUMNS, MOTION_ACTION, SITES
from mmbehave.data.synthetic.generator import (
    clip_plan,
    clips_without_audio,
    ensure_synthetic_dataset,
    generator_settings,
)
from mmbehave.data.synthetic.scenes import (
    BEHAVIORS,
    SPECIES,
    SceneSize,
    render_audio,
    render_video,
)

SMALL = ["data.clips_per_split.train=30", "data.clips_per_split.val=10", "data.clips_per_split.test=10",
         "data.raw_frame_size=32", "data.fps=8", "data.raw_sample_rate=16000"]
TOTAL = 50
VOCAL_ACTIONS = {"vocalizing", "alarm_calling"}


def field_config(root, split_by: str, *more: str):
    overrides = ["data=synthetic_field", f"data.root={root}", f"data.split_by={split_by}", *SMALL, *more]
    return compose_config(overrides).data


@pytest.fixture(scope="module")
def field_roots(tmp_path_factory) -> dict:
    """A small field dataset (50 clips) split both ways, generated and preprocessed as training does it."""
    roots = {}
    for split_by in ("site", "random"):
        root = tmp_path_factory.mktemp(f"field_{split_by}")
        ensure_synthetic_dataset(field_config(root, split_by), num_workers=2, progress=False)
        roots[split_by] = root
    return roots


def tables(root) -> dict[str, pd.DataFrame]:
    layout = DatasetLayout(root)
    return {split: pd.read_csv(layout.metadata_csv(split), dtype=str, keep_default_na=False) for split in SPLITS}


def everything(root) -> pd.DataFrame:
    return pd.concat(tables(root).values()).sort_values("clip_id").reset_index(drop=True)


def video(root, clip_id):
    return DatasetLayout(root).raw_dir / "videos" / f"{clip_id}.mp4"


def test_tables_have_the_field_columns(field_roots):
    for root in field_roots.values():
        for split, table in tables(root).items():
            assert list(table.columns) == COLUMNS == ["clip_id", "species", "behavior", "action", "site_id",
                                                      "cam_id", "event_id"], split
            assert set(table.species) <= set(SPECIES) and set(table.behavior) <= set(BEHAVIORS)
        clips = everything(root)
        assert len(clips) == TOTAL and clips.clip_id.is_unique
        assert (clips.site_id.map(lambda site: site in {s.name for s in SITES})).all()
        assert (clips.apply(lambda row: row.cam_id.startswith(row.site_id + "-C"), axis=1)).all()


def test_behaviours_are_long_tailed(field_roots):
    counts = everything(field_roots["site"]).behavior.value_counts()
    by_share = [counts.get(name, 0) for name in sorted(BEHAVIOR_SHARES, key=BEHAVIOR_SHARES.get, reverse=True)]
    assert by_share == sorted(by_share, reverse=True) and len(set(by_share)) == len(by_share), by_share
    assert by_share[-1] >= 2 and by_share[0] >= 5 * by_share[-1], by_share  # 45 % against 5 %


@pytest.mark.parametrize("split_by", ["site", "random"])
def test_at_the_default_size_the_rarest_behaviour_is_in_val_and_test(split_by):
    plan = clip_plan(generator_settings(compose_config(["data=synthetic_field", f"data.split_by={split_by}"]).data))
    assert sum(map(len, plan.values())) == 800
    rarest = min(BEHAVIOR_SHARES, key=BEHAVIOR_SHARES.get)
    for split, table in plan.items():
        assert (table.behavior == rarest).sum() >= 3, split
        assert set(table.species) == set(SPECIES) and set(table.behavior) == set(BEHAVIORS), split
    assert all(abs(len(plan[split]) - n) <= 40 for split, n in (("train", 480), ("val", 160), ("test", 160)))


def test_an_event_is_one_animal_at_one_camera_doing_one_thing(field_roots):
    clips = everything(field_roots["site"])
    events = clips.groupby("event_id")
    assert (events[["site_id", "cam_id", "species", "behavior", "action"]].nunique() == 1).all().all()
    assert events.size().between(2, 4).all() and events.size().max() > 2
    assert (clips.apply(lambda row: row.event_id.startswith(row.cam_id + "-E"), axis=1)).all()
    # Near-duplicates, not copies: each clip has its own position, heading and noise.
    first, second = events.get_group(events.size().idxmax()).clip_id.iloc[:2]
    root = field_roots["site"]
    frames = [read_video_frames(video(root, clip), 8, 32).float() for clip in (first, second)]
    assert (frames[0] - frames[1]).abs().mean() > 3


def test_actions_are_multi_label_and_follow_what_the_clip_shows_and_sounds_like(field_roots):
    clips = everything(field_roots["site"])
    labels = clips.action.str.split("|")
    assert labels.map(len).between(1, 2).all() and (labels.map(len) == 2).sum() >= 5  # co-occurring labels
    motion = {behavior: MOTION_ACTION[BEHAVIORS[behavior][0]] for behavior in BEHAVIORS}
    for behavior, actions in zip(clips.behavior, labels):
        assert actions[0] == motion[behavior]  # one motion label, the one the video shows
        assert set(actions[1:]) <= VOCAL_ACTIONS
        if behavior == "alarm":
            assert actions[1:] == ["alarm_calling"]
        elif behavior == "calling":
            assert actions[1:] == ["vocalizing"]
    quiet = clips[clips.behavior.isin(["walking", "resting", "running"])].action.str.contains("vocalizing")
    assert quiet.any() and not quiet.all(), "a quiet behaviour's events call, or not, independently of it"

    # What a clip without `vocalizing` sounds like: the same background, without calls.
    size = SceneSize(num_frames=8, frame_size=32, sample_rate=16000, clip_seconds=1.0)
    silent, calling = (render_audio(np.random.default_rng(5), "badger", "walking", size, activity=activity)
                       for activity in ("none", "few"))
    assert np.abs(silent).max() < 0.15 < np.abs(calling).max()


def test_a_share_of_clips_has_no_audio_track(field_roots):
    for root in field_roots.values():
        without = set()
        for clip_id in everything(root).clip_id:
            with av.open(str(video(root, clip_id))) as container:
                assert len(container.streams.video) == 1
                if not container.streams.audio:
                    without.add(clip_id)
        assert len(without) == round(0.2 * TOTAL)
        manifest = pd.read_csv(DatasetLayout(root).manifest, dtype=str, keep_default_na=False)
        assert set(manifest.loc[manifest.status == "no_audio", "clip_id"]) == without


def groups_in_several_splits(root, column: str) -> set[str]:
    split_of = pd.concat([table.assign(split=split) for split, table in tables(root).items()])
    spread = split_of.groupby(column).split.nunique()
    return set(spread[spread > 1].index)


def test_split_by_site_keeps_sites_whole_and_random_does_not(field_roots):
    site, random = field_roots["site"], field_roots["random"]
    for column in ("site_id", "cam_id", "event_id"):
        assert not groups_in_several_splits(site, column), column
    assert groups_in_several_splits(random, "site_id") and groups_in_several_splits(random, "event_id")
    assert [len(table) for table in tables(random).values()] == [30, 10, 10]

    # The trainer's group check: the site split passes it; the random one would fail it, so its config checks nothing.
    group_column = {split_by: generator_column(split_by) for split_by in ("site", "random")}
    assert group_column == {"site": None, "random": []}
    check_groups_in_one_split(DatasetLayout(site), tables(site), group_column["site"])
    check_groups_in_one_split(DatasetLayout(random), tables(random), group_column["random"])
    with pytest.raises(DataError, match="in two splits"):
        check_groups_in_one_split(DatasetLayout(random), tables(random), None)


def generator_column(split_by: str):
    from omegaconf import OmegaConf

    value = compose_config(["data=synthetic_field", f"data.split_by={split_by}"]).data.group_by
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def test_both_splits_hold_the_same_clips(field_roots):
    site, random = everything(field_roots["site"]), everything(field_roots["random"])
    pd.testing.assert_frame_equal(site, random)  # same clips, same labels, only in other splits
    assert any((tables(field_roots["site"])[s].clip_id.tolist() != tables(field_roots["random"])[s].clip_id.tolist())
               for s in SPLITS)
    clip_id = site.clip_id.iloc[7]
    frames = [read_video_frames(video(root, clip_id), 8, 32).float() for root in field_roots.values()]
    assert (frames[0] - frames[1]).abs().mean() < 3  # the same scene (codec noise aside)


def test_sites_look_different(field_roots):
    root = field_roots["site"]
    clips = everything(root).drop_duplicates("site_id").set_index("site_id")
    assert len(clips) == len(SITES)
    colour = {site: read_video_frames(video(root, clips.clip_id[site]), 8, 32).float().mean(dim=(0, 2, 3)).numpy()
              for site in clips.index}
    for a, b in itertools.combinations(colour, 2):
        assert np.abs(colour[a] - colour[b]).max() > 12, (a, b, colour[a], colour[b])
    night = next(site.name for site in SITES if site.lighting.grey)
    assert np.ptp(colour[night]) < 3, "the infrared site is grey"
    assert colour[night].mean() == min(c.mean() for c in colour.values()), "and the darkest"


def test_same_seed_same_tables_another_seed_others(field_roots, tmp_path):
    for split_by, root in field_roots.items():
        settings = generator_settings(field_config(root, split_by))
        for split, table in clip_plan(settings).items():  # planned afresh = what was written
            pd.testing.assert_frame_equal(table, tables(root)[split], check_dtype=False)
    settings = generator_settings(field_config(tmp_path, "site"))
    other = clip_plan(generator_settings(field_config(tmp_path, "site", "data.seed=1")))
    assert not all(clip_plan(settings)[split].equals(other[split]) for split in SPLITS)


def test_field_settings_are_checked_and_name_their_own_folders():
    roots = {split_by: compose_config(["data=synthetic_field", f"data.split_by={split_by}"]).data.root
             for split_by in ("site", "random")}
    assert roots["site"].endswith("/synthetic/field_site_seed_0_missing_audio_20")
    assert roots["random"].endswith("/synthetic/field_random_seed_0_missing_audio_20")
    with pytest.raises(ConfigError, match="data.split_by=camera"):
        generator_settings(compose_config(["data=synthetic_field", "data.split_by=camera"]).data)
    with pytest.raises(ConfigError, match="data.behavior_shares"):
        generator_settings(compose_config(["data=synthetic_field", "~data.behavior_shares.alarm"]).data)


# Computed before the field preset existed (numpy 2.4, x86-64): the tidy benchmark's label tables and clips
# without audio for seed 0, and its scenes, must not change.
TIDY_PLAN = {0.0: "1d3b2780e326fe2b73909be637b910a5241f3f0a13373d6ae93a9b7cc2fcf1ee",
             0.3: "37c26d9ea0abf583512406f345761242adf05ac8f2cdbf9241e066aa28c75bcd"}
TIDY_SCENES = "6c7472cce21ac11cba739e81fdc49678d73f67a97666163f0a29c7879064bd69"


@pytest.mark.parametrize("missing_audio", sorted(TIDY_PLAN))
def test_the_tidy_benchmark_is_unchanged(missing_audio):
    settings = generator_settings(compose_config([f"data.missing_audio={missing_audio}"]).data)
    assert set(settings) == {"seed", "clips_per_split", "fps", "clip_seconds", "raw_frame_size", "raw_sample_rate",
                             *(["missing_audio"] if missing_audio else [])}  # its settings marker too
    plan, digest = clip_plan(settings), hashlib.sha256()
    for index, split in enumerate(SPLITS):
        digest.update(plan[split].to_csv(index=False).encode())
        digest.update(repr(sorted(clips_without_audio(settings, index, len(plan[split])))).encode())
    assert digest.hexdigest() == TIDY_PLAN[missing_audio]
    if missing_audio:
        return
    size, digest = SceneSize(num_frames=16, frame_size=64, sample_rate=22050, clip_seconds=1.0), hashlib.sha256()
    for i, species in enumerate(SPECIES):
        for j, behavior in enumerate(BEHAVIORS):
            rng = np.random.default_rng([0, i, j])
            digest.update(render_video(rng, species, behavior, size).tobytes())
            digest.update(render_audio(rng, species, behavior, size).tobytes())
    assert digest.hexdigest() == TIDY_SCENES
