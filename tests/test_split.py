"""``python -m mmbehave.split``: whole groups per split, every class in every split where the groups allow it,
the rest named with the reason; and training refuses tables that put one site in two splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    TINY_SPLITS,
    compose_config,
    default_heads,
    fresh_store,
    hydra_dir_override,
    run_module,
    train_here,
)

from mmbehave.core.errors import ConfigError, DataError, InputError
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.metadata import check_groups_in_one_split, read_metadata
from mmbehave.data.prepared import prepare_data
from mmbehave.data.settings import DataSettings
from mmbehave.data.splits.group_split import (
    GroupCounts,
    assign_covering,
    missing_classes,
)
from mmbehave.data.splits.maker import OUTPUT_NAMES, make_splits, write_outputs


def label_table(path: Path, sites: dict[str, list[tuple[str, str]]], group_column: str = "site") -> Path:
    """A label table: one row per (species, behavior) listed under each site, clip ids ``<site>-<n>``."""
    rows = [{"clip_id": f"{site}-{n}", "species": species, "behavior": behavior, group_column: site}
            for site, clips in sites.items() for n, (species, behavior) in enumerate(clips)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def common_sites(count: int, size: int = 6, first: int = 1) -> dict[str, list[tuple[str, str]]]:
    """Sites where fox and deer, walking and foraging all occur: they can go anywhere."""
    kinds = [("fox", "walking"), ("deer", "foraging"), ("fox", "foraging"), ("deer", "walking")]
    return {f"S{i}": [kinds[n % 4] for n in range(size)] for i in range(first, first + count)}


def split_and_write(tmp_path: Path, labels: Path, out: str = "out", **keys) -> Path:
    cfg = {"labels": str(labels), "output_dir": str(tmp_path / out), "group_by": "site",
           "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0, "heads": ["species", "behavior"],
           "label_separator": "|", **keys}
    write_outputs(make_splits(cfg))
    return tmp_path / out


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def classes_per_split(out: Path, head: str) -> dict[str, set[str]]:
    return {split: {label for cell in read(out / f"{split}.csv")[head] for label in cell.split("|")}
            for split in SPLITS}


def test_whole_sites_per_split_and_a_rare_class_in_every_split(tmp_path):
    # lynx lives at three small sites only. With seeds 1 and 2, site_splits' deal by size alone puts none of
    # them in train; here every seed must spread them over the three splits.
    sites = common_sites(9, size=8)
    sites |= {f"R{i}": [("lynx", "walking"), ("fox", "foraging")] for i in range(1, 4)}
    labels = label_table(tmp_path / "labels.csv", sites)
    for seed in (0, 1, 2):
        out = split_and_write(tmp_path, labels, f"seed{seed}", seed=seed)
        splits = read(out / "splits.csv")
        assert list(splits.columns) == ["clip_id", "group", "split"] and len(splits) == 9 * 8 + 3 * 2
        assert (splits.groupby("group")["split"].nunique() == 1).all()            # no site in two splits
        for split in SPLITS:
            table = read(out / f"{split}.csv")
            assert list(table.columns) == ["clip_id", "species", "behavior", "site"]
            assert set(splits.loc[splits["split"] == split, "clip_id"]) == set(table["clip_id"])
        for head, classes in (("species", {"fox", "deer", "lynx"}), ("behavior", {"walking", "foraging"})):
            assert all(found == classes for found in classes_per_split(out, head).values()), (seed, head)
        assert read(out / "unsplittable_classes.csv").empty
        rows = read(out / "split_summary.csv").query("kind == 'rows'").set_index("split")["count"].astype(int)
        assert rows["train"] > rows["val"] > 0 and rows["test"] > 0


def test_a_class_the_sites_cannot_spread_is_named_with_its_sites(tmp_path):
    sites = common_sites(8)
    sites["S3"] = sites["S3"] + [("wolf", "walking")] * 4
    sites["S5"] = sites["S5"] + [("otter", "foraging")]
    sites["S6"] = sites["S6"] + [("otter", "walking")] * 2
    out = split_and_write(tmp_path, label_table(tmp_path / "labels.csv", sites))

    missing = read(out / "unsplittable_classes.csv").set_index("class")
    assert list(missing.columns) == ["head", "clips", "groups", "missing_from", "reason"]
    assert missing.loc["wolf", "reason"] == "all 4 clips of `wolf` come from site S3"
    assert missing.loc["wolf", "missing_from"] == "val, test" and missing.loc["wolf", "groups"] == "S3"
    assert missing.loc["otter", "reason"] == ("all 3 clips of `otter` come from 2 site groups (S5, S6), "
                                              "fewer than the 3 splits")
    assert missing.loc["otter", "clips"] == "3"
    present = classes_per_split(out, "species")
    assert "wolf" in present["train"] and "otter" in present["train"]     # never only in val or test
    assert sum("otter" in found for found in present.values()) == 2       # in as many splits as its sites allow


def test_a_class_whose_sites_other_classes_need_is_reported_as_such():
    # Four sites, four classes each at three of them: any two sites sharing a split leave two classes short.
    holders = {"x": "ABC", "y": "ABD", "z": "ACD", "w": "BCD"}
    rows = [(site, [("species", label)]) for label, sites in holders.items() for site in sites]
    groups = GroupCounts.build([site for site, _ in rows], [labels for _, labels in rows], ["species"])
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    missing = missing_classes(groups, assign_covering(groups, fractions, seed=0), fractions, noun="site")
    assert len(missing) == 2 and all(len(m.missing_from) == 1 for m in missing)
    assert missing[0].reason.startswith(f"its 3 clips come from 3 site groups ({', '.join(missing[0].groups)}), "
                                        "but no grouping found spreads them")


def test_a_multi_label_row_counts_for_each_of_its_labels(tmp_path):
    # vocalizing occurs only inside "walking|vocalizing" cells: it must still reach every split.
    sites = common_sites(6)
    sites |= {f"V{i}": [("fox", "walking|vocalizing"), ("deer", "foraging")] for i in range(1, 4)}
    out = split_and_write(tmp_path, label_table(tmp_path / "labels.csv", sites))

    assert all("vocalizing" in found for found in classes_per_split(out, "behavior").values())
    summary = read(out / "split_summary.csv").query("kind == 'label' and head == 'behavior'")
    counts = summary.groupby("class")["count"].apply(lambda c: c.astype(int).sum())
    assert counts["vocalizing"] == 3 and counts["walking"] == 6 * 3 + 3    # the three rows count for both
    assert "walking|vocalizing" not in set(summary["class"])


def test_same_seed_same_files_and_another_seed_can_differ(tmp_path):
    labels = label_table(tmp_path / "labels.csv", common_sites(12, size=4))
    first, again = split_and_write(tmp_path, labels, "a"), split_and_write(tmp_path, labels, "b")
    for name in OUTPUT_NAMES:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    others = {split_and_write(tmp_path, labels, f"seed{seed}", seed=seed).joinpath("splits.csv").read_bytes()
              for seed in (1, 2, 3)}
    assert others - {(first / "splits.csv").read_bytes()}


def test_the_command_prints_the_summary_and_too_few_sites_is_one_line_and_writes_nothing(tmp_path):
    sites = common_sites(6)
    sites["S2"] = sites["S2"] + [("wolf", "walking")] * 4
    labels = label_table(tmp_path / "labels.csv", sites)
    done = run_module("mmbehave.split", f"labels={labels}", "output_dir=out", "group_by=site",
                      "fractions={train:0.7,val:0.15,test:0.15}", "seed=0", *hydra_dir_override(tmp_path), tmp_path=tmp_path)
    assert "| | train | val | test |" in done.stdout and "| site groups |" in done.stdout
    assert "| species | wolf | 4 | val, test | all 4 clips of `wolf` come from site S2 |" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(OUTPUT_NAMES)

    small = label_table(tmp_path / "small.csv", common_sites(2))
    refused = run_module("mmbehave.split", f"labels={small}", "output_dir=small_out", *hydra_dir_override(tmp_path),
                         tmp_path=tmp_path, check=False)
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 site group(s) (S1, S2) in 12 rows for 3 splits (train, val, test)" in errors[0]
    assert not (tmp_path / "small_out").exists()


def test_a_split_without_a_share_gets_no_table(tmp_path):
    out = split_and_write(tmp_path, label_table(tmp_path / "labels.csv", common_sites(2)),
                          fractions={"train": 0.8, "val": 0.2, "test": 0})
    assert not (out / "test.csv").exists() and set(read(out / "splits.csv")["split"]) == {"train", "val"}


@pytest.mark.parametrize("fractions, message", [
    ({"train": 0.5, "tset": 0.5}, "fractions has tset; the splits are train, val, test"),
    ({"train": 0.7, "val": 0.2, "test": 0.2}, "sum to 1.1; they must sum to 1"),
    ({"train": 1.1, "val": -0.05, "test": -0.05}, "a share cannot be negative"),
    ({"train": "most", "val": 0.1, "test": 0.1}, "the shares must be numbers"),
    ({"train": 0, "val": 0.5, "test": 0.5}, "train needs a share above 0"),
    ("0.7", "give a share for each split"),
])
def test_bad_fractions_are_refused(tmp_path, fractions, message):
    labels = label_table(tmp_path / "labels.csv", common_sites(4))
    with pytest.raises(ConfigError, match=message):
        split_and_write(tmp_path, labels, fractions=fractions)
    assert not (tmp_path / "out").exists()


def test_table_mistakes_name_the_column_or_rows(tmp_path):
    labels = label_table(tmp_path / "labels.csv", common_sites(4))
    with pytest.raises(DataError, match=r"no column 'camera' \(group_by\); set group_by= .*Its columns are "
                                        "clip_id, species, behavior, site"):
        split_and_write(tmp_path, labels, group_by="camera")

    table = read(labels)
    table.loc[[2, 7], "site"] = ""
    table.to_csv(labels, index=False)
    with pytest.raises(DataError, match=r"row\(s\) 4, 9: empty site; .* pass empty_group=own"):
        split_and_write(tmp_path, labels)
    out = split_and_write(tmp_path, labels, empty_group="own")
    assert "(no site) S1-2" in set(read(out / "splits.csv")["group"])

    with pytest.raises(InputError, match="already holds train.csv, .*pass overwrite=true"):
        split_and_write(tmp_path, labels, empty_group="own")
    split_and_write(tmp_path, labels, empty_group="own", overwrite=True)


def write_metadata(root: Path, tables: dict[str, list[tuple[str, str]]]) -> DatasetLayout:
    """raw/metadata/<split>.csv with a site column: [(clip_id, site)] per split."""
    layout = DatasetLayout(root)
    layout.metadata_dir.mkdir(parents=True)
    for split, rows in tables.items():
        pd.DataFrame([{"clip_id": clip, "species": "fox" if n % 2 else "deer", "behavior": "walking", "site": site}
                      for n, (clip, site) in enumerate(rows)]).to_csv(layout.metadata_csv(split), index=False)
    return layout


def test_training_refuses_a_site_in_two_splits_naming_it_and_the_rows(tmp_path):
    layout = write_metadata(tmp_path / "data", {"train": [("a", "S1"), ("b", "S1"), ("c", "S2"), ("d", "S3")],
                                                "val": [("e", "S4"), ("f", "S5")],
                                                "test": [("g", "S6"), ("h", "S2")]})
    data_cfg = compose_config(["data=processed", f"data.root={layout.root}"]).data
    with pytest.raises(DataError) as raised:
        prepare_data(DataSettings.from_config(data_cfg), ("video", "audio"), heads=default_heads())
    assert str(raised.value).startswith(f"site 'S2' is in {layout.metadata_csv('train')}, row 4 and in "
                                        f"{layout.metadata_csv('test')}, row 3: a site in two splits leaks")

    tables = read_metadata(layout, heads=default_heads())
    with pytest.raises(DataError, match=r"species 'deer' is in .*train.csv, rows 2, 4 and in .*val.csv, row 2"):
        check_groups_in_one_split(layout, tables, ["species"])            # any column can be made the group
    with pytest.raises(ConfigError, match="data.group_by=camera: no such column .*behavior, clip_id, site, species"):
        check_groups_in_one_split(layout, tables, "camera")
    tables["test"].loc[tables["test"]["site"] == "S2", "site"] = "S7"
    check_groups_in_one_split(layout, tables)                             # one split per site: fine


def make_and_write_folds(tmp_path: Path, labels: Path, **keys):
    from mmbehave.data.splits.folds import make_folds, write_folds
    from mmbehave.data.splits.options import SplitOptions

    cfg = {"labels": str(labels), "output_dir": str(tmp_path / "folds"), "group_by": "site",
           "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0, "heads": ["species", "behavior"],
           "label_separator": "|", **keys}
    result = make_folds(SplitOptions.from_config(cfg))
    write_folds(result)
    return result, tmp_path / "folds"


def test_folds_hold_out_every_site_once_and_never_train_on_it(tmp_path):
    sites = common_sites(9, size=8) | {f"R{i}": [("lynx", "walking"), ("fox", "foraging")] for i in range(1, 4)}
    labels = label_table(tmp_path / "labels.csv", sites)
    result, out = make_and_write_folds(tmp_path, labels, folds=3)

    folds = read(out / "folds.csv")
    assert sorted(folds["clip_id"]) == sorted(read(labels)["clip_id"])  # each clip in exactly one fold's test
    assert set(folds["fold"]) == {"fold_0", "fold_1", "fold_2"}
    for name in ("fold_0", "fold_1", "fold_2"):
        tables = {split: read(out / name / f"{split}.csv") for split in SPLITS}
        site_sets = {split: set(table["site"]) for split, table in tables.items()}
        assert site_sets["test"] == set(folds.loc[folds["fold"] == name, "group"])
        assert not site_sets["test"] & (site_sets["train"] | site_sets["val"]), name
        assert not site_sets["train"] & site_sets["val"], name
        assert sum(len(t) for t in tables.values()) == len(read(labels))
        # the rare lynx (three sites) is held out in every fold and still trained on
        assert "lynx" in set(tables["test"]["species"]) and "lynx" in set(tables["train"]["species"]), name
        assert read(out / name / "unsplittable_classes.csv").empty
    # the same table and seed give the same folds
    (tmp_path / "again").mkdir()
    again, _ = make_and_write_folds(tmp_path / "again", labels, folds=3)
    assert again.fold_of_group == result.fold_of_group


def test_leave_one_site_out_has_a_fold_per_site(tmp_path):
    labels = label_table(tmp_path / "labels.csv", common_sites(4))
    result, out = make_and_write_folds(tmp_path, labels, folds="loo")
    assert sorted(result.fold_of_group.values()) == ["fold_0", "fold_1", "fold_2", "fold_3"]
    for name in result.names:
        assert len(set(read(out / name / "test.csv")["site"])) == 1


def test_folds_that_cannot_work_are_one_line_and_write_nothing(tmp_path):
    labels = label_table(tmp_path / "labels.csv", common_sites(3))
    with pytest.raises(ConfigError, match="folds=1: give a whole number of folds of at least 2"):
        make_and_write_folds(tmp_path, labels, folds=1)
    with pytest.raises(DataError, match="3 site group\\(s\\) for folds=5"):
        make_and_write_folds(tmp_path, labels, folds=5)
    with pytest.raises(DataError, match="leaves 1 site group\\(s\\) for train and val"):
        make_and_write_folds(tmp_path, label_table(tmp_path / "two.csv", common_sites(2)), folds="loo")
    assert not (tmp_path / "folds").exists()
    make_and_write_folds(tmp_path, labels, folds=3, fractions={"train": 1, "val": 0, "test": 0})
    with pytest.raises(InputError, match="already holds folds.csv; pass overwrite=true"):
        make_and_write_folds(tmp_path, labels, folds=3)
    make_and_write_folds(tmp_path, labels, folds=3, overwrite=True)


def dataset_with_sites(tmp_path: Path, synthetic_root: Path) -> tuple[Path, Path]:
    """A copy of the session's dataset (a fold's preprocessing records its splits in the manifest) and one table
    of all its clips, spread over six sites: (dataset root, tmp_path/all.csv)."""
    import shutil

    dataset = Path(shutil.copytree(synthetic_root, tmp_path / "dataset"))
    every = pd.concat([read(dataset / "raw" / "metadata" / f"{split}.csv") for split in SPLITS], ignore_index=True)
    every["site"] = [f"S{index % 6}" for index in range(len(every))]
    every.to_csv(tmp_path / "all.csv", index=False)
    return dataset, tmp_path / "all.csv"


def dataset_with_site_folds(tmp_path: Path, synthetic_root: Path, folds: int) -> tuple[Path, Path]:
    """``dataset_with_sites`` and its clips' folds: (dataset root, folds folder)."""
    dataset, table = dataset_with_sites(tmp_path, synthetic_root)
    _, cv = make_and_write_folds(tmp_path, table, folds=folds)
    return dataset, cv


@pytest.mark.slow
def test_a_fold_trains_on_its_tables_and_is_evaluated_on_its_held_out_sites(tmp_path, synthetic_root):
    from mmbehave.checkpoints.trained_model import load_trained_model
    from mmbehave.data.prepared import split_dataset

    dataset, cv = dataset_with_site_folds(tmp_path, synthetic_root, folds=3)
    fold = cv / "fold_1"
    train_here(tmp_path, "debug=fast", f"data.root={dataset}", *TINY_SPLITS.split(), f"data.labels_dir={fold}")

    trained = load_trained_model(tmp_path / "run" / "checkpoints" / "best.pth")
    for split in SPLITS:  # the fold's tables, not the dataset's raw/metadata, also when the model is evaluated
        assert sorted(split_dataset(trained, split).clip_ids) == sorted(read(fold / f"{split}.csv")["clip_id"])
    assert set(read(fold / "test.csv")["site"]).isdisjoint(read(fold / "train.csv")["site"])


@pytest.mark.slow
def test_site_cv_tests_each_fold_on_its_held_out_sites_and_the_parent_holds_the_mean(tmp_path, synthetic_root):
    import json
    import statistics

    from mlflow.tracking import MlflowClient

    dataset, cv = dataset_with_site_folds(tmp_path, synthetic_root, folds=2)
    run_module("mmbehave.train", "experiment=site_cv", f"cv.dir={cv}", "debug=fast", f"data.root={dataset}",
               *TINY_SPLITS.split(), "training.limit_train_batches=1", "mlflow.experiment_name=cv",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", tmp_path=tmp_path)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cv").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.data.tags["sweep_job"])
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    for child, fold in zip(children, ("fold_0", "fold_1")):  # each run tested on its own fold's held-out sites
        report = json.loads((Path(child.data.tags["run_dir"]) / "evaluation" / "test" / "metrics.json").read_text())
        assert report["num_clips"] == len(read(cv / fold / "test.csv"))
        assert child.data.metrics["test/macro_f1"] == pytest.approx(report["metrics"]["macro_f1"])
    values = [c.data.metrics["test/macro_f1"] for c in children]
    assert parent.data.metrics["mean/test/macro_f1"] == pytest.approx(statistics.mean(values))
    assert parent.data.metrics["std/test/macro_f1"] == pytest.approx(statistics.stdev(values))
    # every fold's value on the parent too: one step per fold, and a table and figure beside the sweep
    history = client.get_metric_history(parent.info.run_id, "fold/test/macro_f1")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(values)
    folds = read(cv / "folds.csv")
    for child, fold in zip(children, ("fold_0", "fold_1")):  # tagged with the fold and the sites it held out
        held_out = sorted(set(folds.loc[folds["fold"] == fold, "group"]))
        assert (child.data.tags["fold"], child.data.tags["held_out"]) == (fold, ", ".join(held_out))
    table = read(tmp_path / "sweep" / "test_over_runs.csv")
    assert list(table["fold"]) == ["fold_0", "fold_1"] and list(table["test/macro_f1"].astype(float)) == pytest.approx(values)
    assert {"test_over_runs.csv", "test_over_runs.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    from omegaconf import OmegaConf

    from mmbehave.analysis.run_report import write_report

    report = OmegaConf.create({"experiment_name": "cv", "sweep_id": "latest", "group_by": "fold",
                               "metric": "test/macro_f1", "extra_metrics": [], "top": 5,
                               "output_dir": str(tmp_path / "report")})
    out = write_report(report, f"sqlite:///{tmp_path / 'mlflow.db'}")
    per_fold = read(out / "report.csv")
    assert list(per_fold.sort_values("fold")["mean"].astype(float)) == pytest.approx(values)
    assert f"mean {statistics.mean(values):.4f}" in (out / "report.md").read_text() and (out / "report.png").is_file()


@pytest.mark.slow
def test_a_killed_site_cv_trains_only_its_missing_folds_when_run_again(tmp_path, synthetic_root):
    import contextlib
    import os
    import signal
    import sqlite3
    import statistics
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from mmbehave.tracking.store import prepare_store

    dataset, table = dataset_with_sites(tmp_path, synthetic_root)
    cv = tmp_path / "cv"  # one command: the first run writes the folds from cv.labels, the second finds them
    command = ["experiment=site_cv", f"cv.dir={cv}", "cv.folds=2", f"cv.labels={table}", "debug=fast",
               f"data.root={dataset}", *TINY_SPLITS.split(), "training.limit_train_batches=1", "mlflow.experiment_name=cv"]
    db = tmp_path / "mlflow.db"
    fresh_store(db, cwd=tmp_path)
    prepare_store(f"sqlite:///{db}")
    first = subprocess.Popen([sys.executable, "-m", "mmbehave.train", *command, f"hydra.sweep.dir={tmp_path / 'first'}"],
                             cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def fold_statuses() -> dict[str, str]:
        try:  # a short read-only look while the sweep writes; a failed read is "not yet"
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as store:
                return dict(store.execute("SELECT tags.value, runs.status FROM runs JOIN tags ON tags.run_uuid = "
                                          "runs.run_uuid WHERE tags.key = 'fold'"))
        except sqlite3.DatabaseError:
            return {}

    deadline = time.time() + 240
    while fold_statuses() != {"fold_0": "FINISHED", "fold_1": "RUNNING"}:
        assert time.time() < deadline and first.poll() is None, first.stderr.read()[-3000:] if first.poll() else "timeout"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("cv").experiment_id
    [fold_0_run] = client.search_runs([experiment], "tags.fold = 'fold_0'")

    # Continued side by side (a launcher is Hydra's business, not the command's): fold_0 is taken over in one
    # joblib worker while fold_1 trains in the other.
    result = run_module("mmbehave.train", *command, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                        f"hydra.sweep.dir={tmp_path / 'second'}", tmp_path=tmp_path)

    assert "fold_0 finished in sweep" in result.stdout + result.stderr
    parents = client.search_runs([experiment], "tags.sweeper != ''", order_by=["attributes.start_time DESC"])
    new_parent, killed_parent = parents
    assert killed_parent.info.status == "KILLED" and new_parent.info.status == "FINISHED"
    assert new_parent.data.tags["continues"] == killed_parent.data.tags["sweep_id"]
    assert new_parent.data.tags["launcher"] == "JoblibLauncher"
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{new_parent.info.run_id}'")
    by_fold = {child.data.tags["fold"]: child for child in children}
    assert sorted(by_fold) == ["fold_0", "fold_1"] and all(c.info.status == "FINISHED" for c in children)
    # fold_0 moved, not trained again: the same run, now under the new parent; fold_1 trained anew
    assert by_fold["fold_0"].info.run_id == fold_0_run.info.run_id
    assert by_fold["fold_0"].data.tags["adopted_from"] == killed_parent.data.tags["sweep_id"]
    assert len(client.search_runs([experiment], "tags.fold = 'fold_0'")) == 1
    assert sorted(path.name for path in cv.iterdir()) == ["fold_0", "fold_1", "folds.csv"]
    assert "adopted_from" not in by_fold["fold_1"].data.tags
    values = [by_fold[fold].data.metrics["test/macro_f1"] for fold in ("fold_0", "fold_1")]
    assert new_parent.data.metrics["mean/test/macro_f1"] == pytest.approx(statistics.mean(values))


def test_site_cv_settles_its_folds_on_the_command_line_in_one_line_each(tmp_path, capsys):
    from mmbehave.core.errors import ConfigError
    from mmbehave.sweeps.cv_folds import settle_folds

    table = tmp_path / "all.csv"
    pd.DataFrame({"clip_id": [f"c{i}" for i in range(24)], "species": ["fox", "deer"] * 12,
                  "behavior": ["walking", "feeding", "resting", "walking"] * 6,
                  "camera": [f"K{i % 4}" for i in range(24)]}).to_csv(table, index=False)
    cv = tmp_path / "cv"

    def refused(*argv: str) -> str:
        with pytest.raises(ConfigError) as error:
            settle_folds(["experiment=site_cv", *argv])
        return str(error.value)

    assert "needs cv.folds=" in refused("debug=fast")
    assert "no fold_<i>/ folders" in refused(f"cv.dir={cv}")
    assert "none of the usual group columns" in refused(f"cv.dir={cv}", "cv.folds=4", f"cv.labels={table}")
    assert "'site'" in refused(f"cv.dir={cv}", "cv.folds=4", f"cv.labels={table}", "cv.group_by=site")
    assert not cv.exists()  # a refused command wrote nothing

    command = ["experiment=site_cv", f"cv.dir={cv}", "cv.folds=4", f"cv.labels={table}", "cv.group_by=camera"]
    assert settle_folds(command) == []
    assert "fold_3" in capsys.readouterr().out
    folds = read(cv / "folds.csv")
    for fold in ("fold_0", "fold_1", "fold_2", "fold_3"):  # each fold holds out its own camera
        held_out = set(folds.loc[folds["fold"] == fold, "group"])
        assert len(held_out) == 1 and set(read(cv / fold / "test.csv")["camera"]) == held_out
    written = (cv / "folds.csv").stat().st_mtime_ns
    assert settle_folds(command) == [] and (cv / "folds.csv").stat().st_mtime_ns == written  # found, not rewritten
    assert "holds 4 folds but cv.folds=3" in refused(*command[1:], "cv.folds=3")
    assert settle_folds(["experiment=site_cv", f"cv.dir={cv}"]) == []
    assert settle_folds(["experiment=guide"]) == []


@pytest.mark.slow
def test_site_cv_on_the_built_in_field_data_is_one_command(tmp_path):
    from mlflow.tracking import MlflowClient

    from mmbehave.sweeps.cv_folds import settle_folds

    # the command the docs give, on a smaller field dataset (240 clips: every behaviour in every fold's train)
    command = ["experiment=site_cv", "data=synthetic_field", "cv.folds=3", "debug=fast", f"paths.root={tmp_path}",
               f"data.root={tmp_path / 'field'}", "data.clips_per_split.train=144", "data.clips_per_split.val=48",
               "data.clips_per_split.test=48", "data.raw_frame_size=32", "data.fps=8", "data.raw_sample_rate=16000"]
    result = run_module("mmbehave.train", *command, "training.limit_train_batches=1", "mlflow.experiment_name=cv",
                        f"hydra.sweep.dir={tmp_path / 'sweep'}", tmp_path=tmp_path, timeout=600)
    cv = tmp_path / "outputs" / "cv" / "field_site_id_3"  # named by dataset, grouping and k: no timestamp
    assert f"cv.dir={cv} " in result.stdout
    folds = read(cv / "folds.csv")
    assert sorted(set(folds["fold"])) == ["fold_0", "fold_1", "fold_2"]
    for fold in ("fold_0", "fold_1", "fold_2"):  # grouped by the field data's own site column
        held_out = set(folds.loc[folds["fold"] == fold, "group"])
        assert set(read(cv / fold / "test.csv")["site_id"]) == held_out
        assert held_out.isdisjoint(read(cv / fold / "train.csv")["site_id"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cv").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(c.data.tags["fold"] for c in children) == ["fold_0", "fold_1", "fold_2"]
    assert all(c.info.status == "FINISHED" and "test/macro_f1" in c.data.metrics for c in children)
    written = (cv / "folds.csv").stat().st_mtime_ns
    assert settle_folds(command) == [f"cv.dir={cv}"]  # the same command again: the same folder, its folds kept
    assert (cv / "folds.csv").stat().st_mtime_ns == written


def test_an_old_option_spelling_is_one_line_naming_the_new_one(tmp_path):
    from mmbehave.core.cli import RENAMED_EVERYWHERE, renamed_option
    from mmbehave.core.errors import ConfigError
    from mmbehave.data.settings import DataSettings
    from mmbehave.data.splits.options import parse_fractions

    message = renamed_option(["labels=t.csv", f"out={tmp_path}"], {"out": "output_dir"})
    assert message.startswith("out= is now output_dir=") and message.endswith(f"give output_dir={tmp_path}")
    assert "split.group_by=locationID" in renamed_option(["split.by=locationID"], {"split.by": "split.group_by"})
    assert renamed_option(["output_dir=x", "group_by=site"], {"out": "output_dir"}) is None
    assert renamed_option(["data.group_column=site"], RENAMED_EVERYWHERE).endswith("give data.group_by=site")
    with pytest.raises(ConfigError, match="data.group_column is now data.group_by"):  # in a user's data yaml
        DataSettings.from_config({"root": str(tmp_path), "group_column": "site"})
    with pytest.raises(ConfigError, match=r"fractions=\[0.7, 0.15, 0.15\]: a list is the old spelling.*"
                                          r"fractions=\{train:0.7,val:0.15,test:0.15\}"):
        parse_fractions([0.7, 0.15, 0.15])
    result = run_module("mmbehave.split", "labels=t.csv", "out=x", tmp_path=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: " + renamed_option(["out=x"], {"out": "output_dir"})]
