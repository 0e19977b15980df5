"""Camtrap DP in and out: a package made here from real clips, recordings and JPEG bursts is imported (labels,
report, site splits, bursts as MP4s), bad packages fail in one line, and predictions go back out as a package
the importer reads again. The import's smoke run and its one-line error go through the real command line; the
end-to-end chain (import, preprocess, train, predict, import again) calls each command's function in this process."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from helpers import hydra_dir_override, run_here, run_module, train_here, user_error
from media import MediaFormat, write_media
from PIL import Image

from mmbehave.core.errors import DataError, InputError
from mmbehave.data.camtrap_dp.exporter import CamtrapExport
from mmbehave.data.camtrap_dp.importer import import_package
from mmbehave.data.camtrap_dp.package import (
    DEPLOYMENT_FIELDS,
    MEDIA_FIELDS,
    OBSERVATION_FIELDS,
    PROFILE_URL,
)
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.splits.group_split import GroupCounts, assign_covering

ROE, BOAR = "Capreolus capreolus", "Sus scrofa"
VIDEO = MediaFormat("clip", ".mp4", width=48, height=32, fps=8, seconds=0.5)
RECORDING = MediaFormat("recording", ".wav", video_codec=None, audio_codec="pcm_s16le", audio_format="s16", seconds=0.5)
DEPLOYMENTS = {"cam-A": "loc-1", "cam-B": "loc-2", "cam-C": "loc-3", "cam-D": "loc-1"}  # cam-D: cam-A's place
BY_SITE = {"cam-A": "train", "cam-B": "val", "cam-C": "test", "cam-D": "train"}
ASSIGN = "split.assign={" + ",".join(f"{d}:{s}" for d, s in BY_SITE.items()) + "}"
BURSTS = {"cam-A/A-e3": 3, "cam-B/B-e2": 4, "cam-C/C-ev": 2}  # clip id -> images


def _jpeg(path: Path, seed: int, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


class PackageBuilder:
    """Writes media files under ``media/`` and the package's tables under ``package/``."""

    def __init__(self, root: Path) -> None:
        self.media_dir, self.package_dir = root / "media", root / "package"
        self.media, self.observations = [], []

    def time(self, deployment: str, minute: int, second: int = 0) -> str:
        day = 1 + sorted(DEPLOYMENTS).index(deployment)  # each camera on its own day, local time +02:00
        return f"2023-06-0{day}T10:{minute:02d}:{second:02d}+02:00"

    def file(self, deployment: str, media_id: str, minute: int, kind="video", second: int = 0, remote=False) -> str:
        suffix = {"video": ".mp4", "audio": ".wav", "image": ".jpg"}[kind]
        relative = f"{deployment}/{media_id}{suffix}"
        if remote:
            relative = f"https://example.org/assets/{media_id}/file"
        elif kind == "image":
            _jpeg(self.media_dir / relative, seed=len(self.media), size=(48, 64) if media_id == "B-i3" else (64, 48))
        else:
            write_media(self.media_dir / relative, VIDEO if kind == "video" else RECORDING)
        mediatype = {"video": "video/mp4", "audio": "audio/wav", "image": "image/jpeg"}[kind]
        self.media.append({"mediaID": media_id, "deploymentID": deployment, "captureMethod": "activityDetection",
                           "timestamp": self.time(deployment, minute, second), "filePath": relative,
                           "filePublic": "true", "fileName": f"{media_id}{suffix}", "fileMediatype": mediatype})
        return media_id

    def observe(self, observation_id: str, deployment: str, level: str, *, media_id="", window=None, event_id="",
                kind="animal", species="", behavior="") -> None:
        if window is None:
            time = next(m["timestamp"] for m in self.media if m["mediaID"] == media_id)
            window = (time, time)
        self.observations.append({
            "observationID": observation_id, "deploymentID": deployment, "mediaID": media_id, "eventID": event_id,
            "eventStart": window[0], "eventEnd": window[1], "observationLevel": level, "observationType": kind,
            "scientificName": species, "count": "1", "behavior": behavior, "classificationMethod": "human",
            "classifiedBy": "a tester"})

    def write(self, drop_column: str | None = None, level_of: dict | None = None) -> Path:
        self.package_dir.mkdir(parents=True, exist_ok=True)
        deployments = [{"deploymentID": d, "locationID": loc, "latitude": 50.1 + i, "longitude": 4.2 + i,
                        "deploymentStart": "2023-06-01T00:00:00Z", "deploymentEnd": "2023-06-30T00:00:00Z"}
                       for i, (d, loc) in enumerate(DEPLOYMENTS.items())]
        observations = [{**o, "observationLevel": (level_of or {}).get(o["observationID"], o["observationLevel"])}
                        for o in self.observations]
        for name, rows, fields in (("deployments", deployments, DEPLOYMENT_FIELDS), ("media", self.media, MEDIA_FIELDS),
                                   ("observations", observations, OBSERVATION_FIELDS)):
            table = pd.DataFrame([{f: str(row.get(f, "")) for f in fields} for row in rows], columns=list(fields))
            table.drop(columns=[c for c in [drop_column] if c in table.columns]).to_csv(
                self.package_dir / f"{name}.csv", index=False)
        descriptor = {"profile": PROFILE_URL, "name": "test-package", "title": "Test cameras",
                      "resources": [{"name": n, "path": f"{n}.csv", "profile": "tabular-data-resource"}
                                    for n in ("deployments", "media", "observations")],
                      "taxonomic": [{"scientificName": ROE, "vernacularNames": {"eng": "roe deer"}}]}
        (self.package_dir / "datapackage.json").write_text(json.dumps(descriptor))
        return self.package_dir


def build_package(root: Path) -> PackageBuilder:
    """Four cameras (cam-D at cam-A's location). Videos, a recording and JPEG bursts; media- and event-level
    observations; a blank, an unclassified one, one without behavior, one of a remote file, one superseded."""
    p = PackageBuilder(root)
    # cam-A: the training site in the end-to-end test (every label of the other sites appears here)
    p.observe("A-o1", "cam-A", "media", media_id=p.file("cam-A", "A-v1", 0), event_id="A-e1", species=ROE,
              behavior="walking")
    p.observe("A-o2", "cam-A", "media", media_id=p.file("cam-A", "A-v2", 10), species=BOAR, behavior="foraging|vigilance")
    for second in range(3):
        p.file("cam-A", f"A-i{second + 1}", 20, "image", second=second)
    p.observe("A-ev", "cam-A", "event", window=("2023-06-01T08:19:59Z", "2023-06-01T08:20:03Z"), event_id="A-e3",
              species=ROE, behavior="foraging")
    p.observe("A-i2-o", "cam-A", "media", media_id="A-i2", event_id="A-e3", species=ROE, behavior="foraging")
    p.observe("A-o4", "cam-A", "media", media_id=p.file("cam-A", "A-a1", 30, "audio"), species=BOAR, behavior="walking")
    p.observe("A-blank", "cam-A", "media", media_id=p.file("cam-A", "A-v3", 40), kind="blank")
    p.observe("A-uncl", "cam-A", "media", media_id=p.file("cam-A", "A-v4", 50), kind="unclassified")
    # cam-B
    p.observe("B-o1", "cam-B", "media", media_id=p.file("cam-B", "B-v1", 0), species=ROE, behavior="walking")
    for second in range(4):
        p.file("cam-B", f"B-i{second + 1}", 10, "image", second=second)
    p.observe("B-ev", "cam-B", "event", window=(p.time("cam-B", 10), p.time("cam-B", 10, 3)), event_id="B-e2",
              species=BOAR, behavior="foraging")
    p.observe("B-nobehavior", "cam-B", "media", media_id=p.file("cam-B", "B-v2", 20), species=BOAR)
    p.observe("B-remote", "cam-B", "media", media_id=p.file("cam-B", "B-v3", 30, remote=True), species=ROE,
              behavior="walking")
    # cam-C
    p.observe("C-o1", "cam-C", "media", media_id=p.file("cam-C", "C-v1", 0), species=BOAR, behavior="walking")
    for second in range(2):
        p.file("cam-C", f"C-i{second + 1}", 10, "image", second=second)
    p.observe("C-ev", "cam-C", "event", window=(p.time("cam-C", 10), p.time("cam-C", 10, 1)), species=ROE,
              behavior="walking")
    # cam-D: same place as cam-A
    p.observe("D-o1", "cam-D", "media", media_id=p.file("cam-D", "D-v1", 0), species=ROE, behavior="foraging")
    p.write()
    return p


@pytest.fixture
def package(tmp_path) -> PackageBuilder:
    return build_package(tmp_path)


def options(builder: PackageBuilder, out: Path, **changes) -> dict:
    base = {"package": str(builder.package_dir), "media_dir": str(builder.media_dir), "output_dir": str(out),
            "species_fallback": "observation_type", "missing_behavior": None, "non_animal_behavior": "none",
            "skip_observation_types": ["unclassified"], "prefer_level": {"image": "event", "video": "media"},
            "split": {"group_by": "deploymentID", "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0,
                      "assign": {}},
            "transfer": "hardlink", "burst": {"fps": 2, "max_side": 1280}}
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


def metadata(root: Path) -> pd.DataFrame:
    layout = DatasetLayout(root)
    tables = [pd.read_csv(layout.metadata_csv(s), dtype=str, keep_default_na=False).assign(split=s) for s in SPLITS]
    return pd.concat(tables).set_index("clip_id")


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def report_counts(path: Path) -> dict[tuple[str, str, str], int]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {(row.item, row.status, row.reason): int(row.count) for row in table.itertuples()}


def test_import_makes_labelled_clips_bursts_and_a_report(tmp_path, package):
    out = tmp_path / "dataset"
    result = run_module("mmbehave.import_camtrap_dp", f"package={package.package_dir}",
                        f"media_dir={package.media_dir}", f"output_dir={out}", ASSIGN, *hydra_dir_override(tmp_path),
                        tmp_path=tmp_path)
    assert "| observations | skipped | 1 | no behavior (missing_behavior=null) | B-nobehavior |" in result.stdout
    assert "10 clip(s): 6 train, 2 val, 2 test" in result.stdout

    counts = report_counts(out / "import_report.csv")
    observations = {key[1:]: n for key, n in counts.items() if key[0] == "observations"}
    assert observations == {
        ("used", ""): 10,
        ("skipped", "no behavior (missing_behavior=null)"): 1,
        ("skipped", "observationType unclassified (skip_observation_types)"): 1,
        ("skipped", "its media files are not available (see media)"): 1,               # the remote video
        ("skipped", "its media are labelled at the other observationLevel (prefer_level)"): 1,  # image in an event
    }
    media = {key[1:]: n for key, n in counts.items() if key[0] == "media"}
    assert media == {("used", ""): 16, ("skipped", "remote file (http URL, not downloaded)"): 1,
                     ("skipped", "no usable observation (none, or all skipped)"): 2}
    assert sum(n for key, n in counts.items() if key[0] == "observations") == len(package.observations)
    assert sum(n for key, n in counts.items() if key[0] == "media") == len(package.media)
    assert counts[("clips", "written", "train: image burst")] == 1 and counts[("clips", "written", "train: audio")] == 1

    table = metadata(out)
    assert sorted(table.index) == sorted(["cam-A/A-v1", "cam-A/A-v2", "cam-A/A-e3", "cam-A/A-a1", "cam-A/A-v3",
                                          "cam-B/B-v1", "cam-B/B-e2", "cam-C/C-v1", "cam-C/C-ev", "cam-D/D-v1"])
    assert (table["split"] == table["deploymentID"].map(BY_SITE)).all()
    assert table.loc["cam-A/A-v3", ["species", "behavior"]].tolist() == ["blank", "none"]   # observationType fallback
    assert table.loc["cam-A/A-v2", "behavior"] == "foraging"                              # dominant of foraging|vigilance
    assert table.loc["cam-A/A-e3", ["species", "mediaID", "eventID", "observationLevel"]].tolist() == [
        ROE, "A-i1|A-i2|A-i3", "A-e3", "event"]
    assert table.loc["cam-A/A-e3", ["eventStart", "eventEnd"]].tolist() == ["2023-06-01T08:20:00Z", "2023-06-01T08:20:02Z"]
    raw = DatasetLayout(out).raw_dir
    for clip_id, images in BURSTS.items():
        assert table.loc[clip_id, "video_path"] == f"videos/{clip_id}.mp4"
        assert frame_count(raw / table.loc[clip_id, "video_path"]) == images
    with av.open(str(raw / "videos/cam-B/B-e2.mp4")) as container:  # one portrait image fitted into the landscape frame
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 48) and not container.streams.audio
    assert table.loc["cam-A/A-a1", "video_path"] == "videos/cam-A/A-a1.wav"
    linked = raw / "videos/cam-A/A-v1.mp4"
    assert linked.stat().st_ino == (package.media_dir / "cam-A/A-v1.mp4").stat().st_ino  # hard link, no copy
    assert sorted(p.name for p in (raw / "camtrap_dp").iterdir()) == ["datapackage.json", "deployments.csv", "media.csv"]
    assert not [p for p in out.rglob(".*")]  # no temp files left behind


def test_splits_keep_whole_sites_and_follow_the_seed(tmp_path, package):
    first = import_package(options(package, tmp_path / "a"))
    again = import_package(options(package, tmp_path / "b"))
    sites = {clip.deployment_id: clip.split for clip in first.clips}
    assert all(sites[clip.deployment_id] == clip.split for clip in first.clips)   # a deployment in one split
    assert {clip.clip_id: clip.split for clip in again.clips} == {clip.clip_id: clip.split for clip in first.clips}
    assert set(sites.values()) == set(SPLITS)

    by_place = import_package(options(package, tmp_path / "c", split={"group_by": "locationID", "seed": 3}))
    places = {clip.deployment_id: clip.split for clip in by_place.clips}
    assert places["cam-A"] == places["cam-D"]                                   # one location, one split
    assert metadata(tmp_path / "c").loc["cam-D/D-v1", "locationID"] == "loc-1"

    # The deal: whole groups, the big one to train, every split a group, and the seed picks among equals.
    def groups_of(sizes: dict[str, int]) -> GroupCounts:
        rows = [group for group, n in sizes.items() for _ in range(n)]
        return GroupCounts.build(rows, [[("species", "roe")]] * len(rows), ("species",))

    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert assign_covering(groups_of({"big": 10, "b": 1, "c": 1}), fractions, 0)["big"] == "train"
    deals = {tuple(sorted(assign_covering(groups_of({f"g{i}": 3 for i in range(10)}), fractions, s).items()))
             for s in range(5)}
    assert len(deals) > 1
    for deal in deals:
        assert [split for _, split in deal].count("train") == 7


def test_labels_follow_the_config_and_a_zip_reads_like_a_folder(tmp_path, package):
    archive = tmp_path / "package.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.package_dir.iterdir():
            zipped.write(path, f"export/{path.name}")
    changed = import_package(options(package, tmp_path / "zip", package=str(archive), species_fallback="skip",
                                     missing_behavior="unknown"))
    clips = {clip.clip_id: (clip.species, clip.behavior) for clip in changed.clips}
    assert clips["cam-B/B-v2"] == (BOAR, "unknown") and "cam-A/A-v3" not in clips
    assert changed.report.count("observations", "skipped",
                                "no scientificName, observationType blank (species_fallback=skip)") == 1


def test_bad_packages_fail_in_one_line(tmp_path, package):
    empty = tmp_path / "not_a_package"
    empty.mkdir()
    result = run_module("mmbehave.import_camtrap_dp", f"package={empty}", f"output_dir={tmp_path / 'out'}",
                        *hydra_dir_override(tmp_path), tmp_path=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {empty / 'datapackage.json'}: not found. A Camtrap DP package is a folder with "
                      "datapackage.json, deployments.csv, media.csv and observations.csv; give package=<that folder>."]
    assert not (tmp_path / "out").exists()

    package.write(drop_column="observationType")
    with pytest.raises(DataError, match=r"observations\.csv: missing column\(s\) observationType; Camtrap DP 1\.0"):
        import_package(options(package, tmp_path / "out"))
    package.write(level_of={"B-ev": "sequence"})
    row = 2 + [o["observationID"] for o in package.observations].index("B-ev")
    with pytest.raises(DataError, match=rf"observations\.csv, row {row}: observationLevel 'sequence' is neither"):
        import_package(options(package, tmp_path / "out"))
    with pytest.raises(InputError, match="no such file or folder"):
        import_package(options(package, tmp_path / "out", package=str(tmp_path / "nowhere")))
    with pytest.raises(InputError, match="not a dataset written by mmbehave.import_camtrap_dp"):
        CamtrapExport.prepare(str(package.media_dir), str(empty))


def test_predictions_of_loose_clips_become_a_package_with_placeholders(tmp_path):
    field = tmp_path / "field"
    video = write_media(field / "site_1" / "clip", VIDEO)
    recording = write_media(field / "recorder", RECORDING)
    rows = [{"path": str(video), "species": ROE, "species_prob": 0.91, "behavior": "walking", "behavior_prob": 0.8,
             "has_video": True},
            {"path": str(recording), "species": "blank", "species_prob": 0.7, "behavior": "none",
             "behavior_prob": 0.6, "has_video": False}]
    exporter = CamtrapExport.prepare(str(field), None)
    assert exporter.dataset is None
    folder = exporter.write(tmp_path / "package", rows, "mmbehave 0.1.0 run123")

    observations = pd.read_csv(folder / "observations.csv", dtype=str, keep_default_na=False)
    assert list(observations.columns) == list(OBSERVATION_FIELDS)
    assert observations[["mediaID", "observationType", "scientificName", "behavior", "classificationProbability"]
                        ].values.tolist() == [["site_1/clip.mp4", "animal", ROE, "walking", "0.91"],
                                              ["recorder.wav", "blank", "", "none", "0.7"]]
    assert set(observations["classificationMethod"]) == {"machine"}
    assert set(observations["classifiedBy"]) == {"mmbehave 0.1.0 run123"}
    media = pd.read_csv(folder / "media.csv", dtype=str, keep_default_na=False)
    assert list(media.columns) == list(MEDIA_FIELDS)
    assert media["fileMediatype"].tolist() == ["video/mp4", "audio/wav"]
    deployments = pd.read_csv(folder / "deployments.csv", dtype=str, keep_default_na=False)
    assert deployments["deploymentID"].tolist() == ["mmbehave-unknown"]
    descriptor = json.loads((folder / "datapackage.json").read_text())
    assert descriptor["profile"] == PROFILE_URL
    assert [r["name"] for r in descriptor["resources"]] == ["deployments", "media", "observations"]
    assert descriptor["taxonomic"] == [{"scientificName": ROE}]

    back = import_package({"package": str(folder), "media_dir": str(field), "output_dir": str(tmp_path / "again"),
                           "split": {"assign": {"mmbehave-unknown": "train"}}})
    assert sorted((c.clip_id, c.kind, c.species, c.behavior) for c in back.clips) == [
        ("mmbehave-unknown/recorder.wav", "audio", "blank", "none"),
        ("mmbehave-unknown/site_1_clip.mp4", "video", ROE, "walking")]


SETTINGS = ["data.num_frames=4", "data.image_size=32", "data.n_mels=32", "data.n_fft=400", "data.clip_seconds=1.0"]


@pytest.mark.slow
def test_import_preprocess_train_predict_export_and_import_again(tmp_path, package):
    from mmbehave import __version__
    from mmbehave.checkpoints.files import read_checkpoint

    out, predicted = tmp_path / "dataset", tmp_path / "predicted"
    run_here("import_camtrap_dp", f"package={package.package_dir}", f"media_dir={package.media_dir}", f"output_dir={out}",
             ASSIGN, tmp_path=tmp_path, run="import")
    done = run_here("preprocess", f"data.root={out}", *SETTINGS, "preprocess.num_workers=1", tmp_path=tmp_path,
                    run="preprocess").value
    assert ("10 clips: 6 ok, 3 without audio (silent spectrogram), 1 without video (audio files), "
            "0 already up to date, 0 failed.") in done.format()  # bursts are silent MP4s, the recording has no picture
    manifest = pd.read_csv(DatasetLayout(out).manifest, dtype=str, keep_default_na=False).set_index("clip_id")
    assert manifest.loc["cam-A/A-a1", "status"] == "no_video" and manifest.loc["cam-B/B-e2", "status"] == "no_audio"
    assert set(manifest["status"]) == {"ok", "no_audio", "no_video"}

    train_here(tmp_path, "debug=fast", "data=processed", f"data.root={out}", *SETTINGS, run="train")
    checkpoint = tmp_path / "train" / "checkpoints" / "best.pth"
    run_id = read_checkpoint(checkpoint)["mlflow_run_id"]

    wrong = user_error(lambda: run_here("predict", f"checkpoint={checkpoint}", f"input={out / 'raw' / 'videos'}",
                                        "format=xml", tmp_path=tmp_path, run="wrong"))
    assert wrong.startswith("format=xml: use csv or camtrap_dp.")
    output, rows, _ = run_here("predict", f"checkpoint={checkpoint}", f"input={out / 'raw' / 'videos'}",
                                      "format=camtrap_dp", f"output={predicted}", tmp_path=tmp_path, run="predict").value
    assert (output, len(rows)) == (predicted, 10)  # the command prints: Predicted 10 clip(s): <predicted>

    observations = pd.read_csv(predicted / "observations.csv", dtype=str, keep_default_na=False)
    assert list(observations.columns) == list(OBSERVATION_FIELDS) and len(observations) == 10
    assert set(observations["classifiedBy"]) == {f"mmbehave {__version__} {run_id}"}
    assert set(observations["classificationMethod"]) == {"machine"}
    assert observations["classificationProbability"].astype(float).between(0, 1).all()
    # The imported dataset was found above input=: real deployments, media and events, not placeholders.
    by_level = observations.groupby("observationLevel")
    assert sorted(by_level.get_group("event")["eventID"]) == ["A-e3", "B-e2", "C-ev"]
    assert sorted(by_level.get_group("media")["mediaID"]) == ["A-a1", "A-v1", "A-v2", "A-v3", "B-v1", "C-v1", "D-v1"]
    media = pd.read_csv(predicted / "media.csv", dtype=str, keep_default_na=False)
    assert len(media) == 16 and set(media["filePath"]) <= {m["filePath"] for m in package.media}
    deployments = pd.read_csv(predicted / "deployments.csv", dtype=str, keep_default_na=False)
    assert sorted(deployments["deploymentID"]) == sorted(DEPLOYMENTS) and "50.1" in set(deployments["latitude"])
    descriptor = json.loads((predicted / "datapackage.json").read_text())
    assert descriptor["profile"] == PROFILE_URL and descriptor["project"]["observationLevel"] == ["event", "media"]

    # Read back with the importer: every clip again, labelled with what the model said.
    again = tmp_path / "again"
    run_here("import_camtrap_dp", f"package={predicted}", f"media_dir={package.media_dir}", f"output_dir={again}", ASSIGN,
             tmp_path=tmp_path, run="again_run")
    reread = metadata(again)
    assert sorted(reread.index) == sorted(metadata(out).index)
    said = {(row["deploymentID"], row["mediaID"] or row["eventID"]):
            (row["scientificName"] or row["observationType"], row["behavior"]) for row in observations.to_dict("records")}
    for clip_id, row in reread.iterrows():
        key = (row["deploymentID"], row["eventID"] if row["mediaType"] == "images" else row["mediaID"])
        assert (row["species"], row["behavior"]) == said[key], clip_id
    assert report_counts(again / "import_report.csv")[("observations", "used", "")] == 10
