"""`python -m mmbehave.distill`: a student learns from a trained teacher's answers (cached once), from clips nobody
labelled, and is refused a teacher it cannot learn from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_SPLITS, compose_config, run_here, user_error
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.core.digests import file_sha256
from mmbehave.distilling.loss import LABELED_KEY, TEACHER_KEY, DistillationLoss, soft_loss
from mmbehave.distilling.pool import kept_clips
from mmbehave.domain.heads import HeadSpec
from mmbehave.training.loss import HeadsLoss

pytestmark = pytest.mark.slow

SPECIES = HeadSpec("species", "species")
ACTIONS = HeadSpec("actions", "actions", type="multi")


def test_the_soft_term_is_zero_only_where_the_student_answers_as_the_teacher_does():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    assert soft_loss(SPECIES, teacher.clone(), teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_loss(SPECIES, teacher.flip(1), teacher, 4.0).item() > 0.01
    # multi-label: per label, BCE to the teacher's sigmoid; its minimum is the teacher's own entropy, not 0
    same, other = soft_loss(ACTIONS, teacher.clone(), teacher, 2.0), soft_loss(ACTIONS, -teacher, teacher, 2.0)
    assert other.item() > same.item()


def test_unlabelled_clips_are_learnt_from_the_teacher_alone_and_alpha_weighs_the_two():
    hard = HeadsLoss((SPECIES,))
    logits = {"species": torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])}
    teacher = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, -3.0]])
    targets = {"species": torch.tensor([0, 1, 0]), TEACHER_KEY.format("species"): teacher,
               LABELED_KEY: torch.tensor([1.0, 1.0, 0.0])}
    labels_only, _ = DistillationLoss(hard, alpha=0.0, temperature=2.0)(logits, targets)
    # alpha 0: the labelled clips' cross-entropy (weighed by their share of the batch), the unlabelled one ignored
    expected = torch.nn.functional.cross_entropy(logits["species"][:2], targets["species"][:2]) * 2 / 3
    assert labels_only.item() == pytest.approx(expected.item(), rel=1e-5)
    teacher_only, parts = DistillationLoss(hard, alpha=1.0, temperature=2.0)(logits, targets)
    assert teacher_only.item() == pytest.approx(soft_loss(SPECIES, logits["species"], teacher, 2.0).item(), rel=1e-5)
    assert {"species_soft_loss", "species_hard_loss"} <= set(parts)
    # validation batches carry no teacher answers: the labels' loss alone, comparable with train's
    plain, _ = DistillationLoss(hard, 0.5, 2.0)(logits, {"species": targets["species"]})
    assert plain.item() == pytest.approx(hard(logits, {"species": targets["species"]})[0].item())


def test_unlabelled_clips_are_kept_by_confidence_and_the_common_class_is_capped():
    probabilities = {"species": np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.55, 0.45], [0.2, 0.8]])}
    assert kept_clips(probabilities, (SPECIES,), 0.0, balance=False, max_clips=None).tolist() == [0, 1, 2, 3, 4]
    assert kept_clips(probabilities, (SPECIES,), 0.75, balance=False, max_clips=None).tolist() == [0, 1, 4]
    # four clips of class 0, one of class 1: the median count over the two classes (2) caps class 0,
    # its most confident clips first
    assert kept_clips(probabilities, (SPECIES,), 0.0, balance=True, max_clips=None).tolist() == [0, 1, 4]
    assert kept_clips(probabilities, (SPECIES,), 0.0, balance=False, max_clips=2).tolist() == [0, 1]


@pytest.fixture(scope="module")
def pool(synthetic_root, tmp_path_factory):
    """Sixteen clips of the session's dataset's kind that none of its splits holds."""
    from mmbehave.data.synthetic.generator import write_unlabeled_pool

    folder = tmp_path_factory.mktemp("pool")
    write_unlabeled_pool(folder, compose_config([f"data.root={synthetic_root}", *TINY_SPLITS.split()]).data, 16,
                         num_workers=1, progress=False)
    return folder


def distil(tmp_path, teacher, root, *overrides, run="student"):
    return run_here("distill", f"teacher={teacher}", "debug=fast", f"data.root={root}", *TINY_SPLITS.split(),
                    f"training.feature_cache_dir={tmp_path / 'cache'}", *overrides, tmp_path=tmp_path, run=run)


def test_a_student_learns_from_the_teacher_and_the_pool_and_a_second_student_reuses_the_answers(
        tmp_path, trained_run, synthetic_root, pool):
    first = distil(tmp_path, trained_run.checkpoint, synthetic_root, f"distill.unlabeled={pool}")
    answers = sorted((tmp_path / "cache" / "teacher").glob("*.npz"))
    assert [path.name.split("-")[0] for path in answers] == ["train", "unlabeled"]
    assert "Unlabelled clips: 16 file(s), 0 unreadable" in first.output
    written = {path: path.stat().st_mtime_ns for path in answers}

    student = tmp_path / "student" / "checkpoints" / "best.pth"
    stored = read_checkpoint(student)
    # an ordinary checkpoint of the student's own model
    assert OmegaConf.create(stored["config"]).model.audio_encoder._target_.endswith("SmallAudioCNN")
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(stored["mlflow_run_id"])
    assert run.data.tags["teacher_sha256"] == file_sha256(trained_run.checkpoint)
    assert run.data.tags["teacher_run_id"] == trained_run.run_id
    assert int(run.data.tags["unlabeled_kept"]) >= 1
    assert run.info.experiment_id == MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name(
        "distill").experiment_id

    # The student goes on like any model: evaluate, export to ONNX, predict clips with the int8 file.
    run_here("evaluate", f"checkpoint={student}", f"output_dir={tmp_path / 'eval'}", "mlflow.log=false",
             "attention.num_clips=0", tmp_path=tmp_path, run="evaluate")
    assert (tmp_path / "eval" / "summary.csv").is_file()
    exported = tmp_path / "export"
    run_here("export", f"checkpoint={student}", "format=onnx", f"output_dir={exported}", "calibration.clips=8",
             "latency.clips=2", "latency.warmup=1", "mlflow.log=false", tmp_path=tmp_path, run="export")
    clips = tmp_path / "clips"
    clips.mkdir()
    for video in sorted((synthetic_root / "raw" / "videos").glob("test_*.mp4"))[:4]:
        shutil.copy(video, clips / video.name)
    tables = {}
    for name, model in (("pth", student), ("onnx", exported / "model.onnx"), ("int8", exported / "model_int8.onnx")):
        run_here("predict", f"checkpoint={model}", f"input={clips}", f"output={tmp_path / name}.csv",
                 "num_workers=0", tmp_path=tmp_path, run=f"predict_{name}")
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv", keep_default_na=False)
    assert len(tables["int8"]) == 4 and set(tables["int8"]["species"]) <= set(stored["classes"]["species"])
    assert tables["onnx"]["species"].tolist() == tables["pth"]["species"].tolist()
    np.testing.assert_allclose(tables["onnx"]["species_prob"], tables["pth"]["species_prob"], atol=1e-4)

    # Another student, another temperature: the teacher does not run again (what a sweep's trials rely on).
    second = distil(tmp_path, trained_run.checkpoint, synthetic_root, f"distill.unlabeled={pool}",
                    "student=video_only", "distill.temperature=2", run="student2")
    assert second.output.count("read from") == 2 and "written to" not in second.output
    assert {path: path.stat().st_mtime_ns for path in answers} == written


def test_a_teacher_of_other_classes_or_other_preprocessing_is_refused_in_one_line(tmp_path, trained_run,
                                                                                  synthetic_root):
    labels = tmp_path / "labels"
    shutil.copytree(synthetic_root / "raw" / "metadata", labels)
    for table in labels.glob("*.csv"):
        frame = pd.read_csv(table, dtype=str)
        frame["species"] = frame["species"].replace({frame["species"].iloc[0]: "wolverine"})
        frame.to_csv(table, index=False)
    message = user_error(lambda: distil(tmp_path, trained_run.checkpoint, synthetic_root,
                                        f"data.labels_dir={labels}"))
    assert "species classes" in message and "wolverine" in message

    message = user_error(lambda: distil(tmp_path, trained_run.checkpoint, synthetic_root, "data.num_frames=4"))
    assert "data.num_frames=8" in message and "data.num_frames=4" in message
    assert not (tmp_path / "student").exists()  # refused before any run folder or MLflow run
    # ... and before the dataset was made: other preprocessing must not remake its files (the clips are still the
    # teacher's 8 frames; the manifest's own time is no witness, the session's other tests preprocess it as well)
    manifest = pd.read_csv(synthetic_root / "processed" / "manifest.csv")
    assert set(manifest["num_frames"]) == {8}
    assert torch.load(synthetic_root / "processed" / "video_frames" / "train_00000.pt", weights_only=True).shape[0] == 8


def test_the_student_sweep_preset_sweeps_distill_options_over_the_distill_command():
    from hydra import compose, initialize_config_dir

    from mmbehave.core.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose(config_name="distill", overrides=["teacher=x", "hparams_search=student"],
                      return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.study_name == "student"
    assert {"distill.alpha", "distill.temperature"} <= set(cfg.hydra.sweeper.params)
    assert cfg.training.loss._target_ == "mmbehave.distilling.loss.distillation_loss"


def test_the_distill_rows_site_folds_train_each_fold_on_its_own_sites_and_refuse_a_pool(tmp_path):
    """benchmark.distill_folds=N: every run of a fold reads that fold's label tables, a distilled run learns from its
    own fold's teacher, and asking for the pool as well is one line naming both keys (before anything is made)."""
    from mmbehave.perf.distill_rows import _command, site_folds

    fold = tmp_path / "folds" / "fold_1"
    teacher = tmp_path / "teacher_fold_1" / "run" / "checkpoints" / "best.pth"
    args = _command("distilled", tmp_path / "distilled_fold_1", [], 0, "small_fused", teacher, None, fold)
    assert f"data.labels_dir={fold}" in args and f"teacher={teacher}" in args and "student=small_fused" in args
    assert not any(a.startswith("data.labels_dir") for a in _command("teacher", tmp_path, [], 0, "small_fused", None,
                                                                     None))
    cfg = compose_config(["data=synthetic_field", "benchmark.distill_folds=3", f"paths.data_dir={tmp_path}"],
                         config_name="benchmark")
    message = user_error(lambda: site_folds(cfg, tmp_path, 3))
    assert "benchmark.distill_folds=3" in message and "benchmark.distill_pool=0" in message
    assert not (tmp_path / "folds").exists() and not (tmp_path / "synthetic").exists()

    # distill_fold_pool: the fold's archive is every clip its training does not label (validation and held-out sites)
    from mmbehave.perf.distill_rows import archive_pool

    fold.mkdir(parents=True)
    for split, ids in {"train": ["c0", "c1"], "val": ["c2"], "test": ["c3", "c4"]}.items():
        pd.DataFrame({"clip_id": ids, "site_id": split}).to_csv(fold / f"{split}.csv", index=False)
    table = pd.read_csv(archive_pool(cfg, fold, tmp_path))
    videos = Path(str(cfg.data.root)).resolve() / "raw" / "videos"
    assert list(table["path"]) == [str(videos / f"c{i}.mp4") for i in (2, 3, 4)]
