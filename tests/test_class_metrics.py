"""The long-tail scores (mmbehave.metrics.class_scores) equal scikit-learn's on the same arrays, including a
class the targets never hold and a class the model never predicts, for single-label and multi-label heads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
)

from mmbehave.metrics.average_precision import binary_average_precision
from mmbehave.metrics.class_scores import (
    frequent_classes,
    multi_label_scores,
    single_label_scores,
)
from mmbehave.metrics.confusion import accuracy_and_macro_f1, confusion_matrix

NUM_CLASSES = 7
NEVER_PREDICTED = 0   # in the targets, never the most probable
EXTRA = 5             # predicted, never in the targets
ABSENT = 6            # in the class list only: neither true nor predicted
TRAIN_COUNTS = np.array([50, 3, 20, 8, 1, 2, 40])


def single_label_arrays(seed: int = 0, size: int = 300):
    """Targets over classes 0-4, softmax-like probabilities (rounded, so scores tie) that never rank class 0
    or class 6 first and sometimes rank class 5 first."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, EXTRA, size)
    logits = rng.normal(size=(size, NUM_CLASSES))
    logits[np.arange(size), targets] += 1.5                          # better than chance
    logits[:, NEVER_PREDICTED] -= 10
    logits[:, ABSENT] -= 10
    logits[rng.random(size) < 0.1, EXTRA] += 10                      # false alarms of a class no clip has
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return targets, np.round(probs, 2)


def sklearn_ap(is_positive: np.ndarray, scores: np.ndarray, **kwargs):
    with warnings.catch_warnings():  # sklearn warns about classes without positives; the tests leave those out
        warnings.simplefilter("ignore", UserWarning)
        return average_precision_score(is_positive, scores, **kwargs)


def test_the_arrays_hold_every_awkward_case():
    targets, probs = single_label_arrays()
    predicted = probs.argmax(axis=1)
    assert NEVER_PREDICTED in targets and NEVER_PREDICTED not in predicted
    assert EXTRA not in targets and EXTRA in predicted
    assert ABSENT not in targets and ABSENT not in predicted
    assert len(np.unique(probs[:, 1])) < len(probs)  # tied scores


def test_single_label_per_class_scores_match_scikit_learn_with_every_class_listed():
    targets, probs = single_label_arrays()
    predicted = probs.argmax(axis=1)
    scores = single_label_scores(targets, probs, TRAIN_COUNTS).per_class
    expected = precision_recall_fscore_support(targets, predicted, labels=range(NUM_CLASSES), zero_division=0)
    for name, values in zip(("precision", "recall", "f1", "support"), expected):
        np.testing.assert_allclose(scores[name], values, err_msg=name)
    assert scores["precision"][NEVER_PREDICTED] == 0 and scores["recall"][EXTRA] == 0


def test_single_label_average_precision_matches_scikit_learn_one_vs_rest():
    targets, probs = single_label_arrays()
    one_hot = np.eye(NUM_CLASSES)[targets]
    scores = single_label_scores(targets, probs)
    has_positives = one_hot.sum(axis=0) > 0
    np.testing.assert_allclose(scores.per_class["average_precision"][has_positives],
                               sklearn_ap(one_hot[:, has_positives], probs[:, has_positives], average=None))
    # Undefined without positives (sklearn says 0 and warns): NaN, and left out of the macro average.
    assert np.isnan(scores.per_class["average_precision"][[EXTRA, ABSENT]]).all()
    assert scores.summary["macro_ap"] == pytest.approx(
        sklearn_ap(one_hot[:, has_positives], probs[:, has_positives], average="macro"))


def test_single_label_averages_match_scikit_learn_and_the_training_macro_f1():
    targets, probs = single_label_arrays()
    predicted = probs.argmax(axis=1)
    summary = single_label_scores(targets, probs).summary
    macro = precision_recall_fscore_support(targets, predicted, average="macro", zero_division=0)
    micro = precision_recall_fscore_support(targets, predicted, labels=range(NUM_CLASSES), average="micro",
                                            zero_division=0)
    for index, name in enumerate(("precision", "recall", "f1")):
        assert summary[f"macro_{name}"] == pytest.approx(macro[index]), name
        assert summary[f"micro_{name}"] == pytest.approx(micro[index]), name
        assert summary[f"micro_{name}"] == pytest.approx(accuracy_score(targets, predicted))
    # The extra class counts (F1 0), the absent one does not: what val/macro_f1 has always meant.
    assert summary["macro_f1"] == pytest.approx(accuracy_and_macro_f1(confusion_matrix(targets, predicted, NUM_CLASSES))[1])
    occurring = sorted(set(targets) | set(predicted))
    assert EXTRA in occurring and ABSENT not in occurring
    assert summary["macro_f1"] == pytest.approx(f1_score(targets, predicted, labels=occurring, average="macro",
                                                         zero_division=0))


def test_frequent_and_rare_are_the_classes_above_and_up_to_the_median_training_count():
    assert frequent_classes(np.array([10, 5, 5, 1])).tolist() == [True, False, False, False]
    assert not frequent_classes(np.array([8, 8, 8])).any()  # equally frequent: all rare
    targets, probs = single_label_arrays()
    predicted = probs.argmax(axis=1)
    scores = single_label_scores(targets, probs, TRAIN_COUNTS)
    is_frequent = scores.per_class["is_frequent"]
    assert np.flatnonzero(is_frequent).tolist() == [0, 2, 6]  # 50, 20, 40 > median 8
    one_hot = np.eye(NUM_CLASSES)[targets]
    for group, members in (("frequent", is_frequent), ("rare", ~is_frequent)):
        occurring = [c for c in np.flatnonzero(members) if c in targets or c in predicted]
        assert scores.summary[f"{group}_macro_f1"] == pytest.approx(
            f1_score(targets, predicted, labels=occurring, average="macro", zero_division=0))
        with_positives = [c for c in np.flatnonzero(members) if c in targets]
        assert scores.summary[f"{group}_macro_ap"] == pytest.approx(
            sklearn_ap(one_hot[:, with_positives], probs[:, with_positives], average="macro"))
    assert np.isnan(single_label_scores(targets, probs, np.full(NUM_CLASSES, 4)).summary["frequent_macro_f1"])


def multi_label_arrays(seed: int = 1, size: int = 200, num_classes: int = 6):
    """Targets with a column no sample has (4) and a row with no label; column 5 never reaches the threshold."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((size, num_classes)) < 0.3).astype(int)
    targets[:, 4] = 0
    targets[0] = 0
    probs = np.clip(0.35 * targets + rng.random((size, num_classes)) * 0.7, 0, 1).round(2)
    probs[:, 5] = np.minimum(probs[:, 5], 0.45)
    probs[0] = 0.1  # nothing true, nothing predicted
    return targets, probs


def test_multi_label_scores_match_scikit_learn():
    targets, probs = multi_label_arrays()
    predicted = (probs >= 0.5).astype(int)
    assert predicted[:, 5].sum() == 0 and targets[:, 4].sum() == 0 and predicted[:, 4].sum() > 0
    scores = multi_label_scores(targets, probs, threshold=0.5)
    expected = precision_recall_fscore_support(targets, predicted, zero_division=0)
    for name, values in zip(("precision", "recall", "f1", "support"), expected):
        np.testing.assert_allclose(scores.per_class[name], values, err_msg=name)
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(targets, predicted, average=average, zero_division=0)
        assert [scores.summary[f"{average}_{n}"] for n in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    assert scores.summary["samples_f1"] == pytest.approx(f1_score(targets, predicted, average="samples", zero_division=0))
    has_positives = targets.sum(axis=0) > 0
    np.testing.assert_allclose(scores.per_class["average_precision"][has_positives],
                               sklearn_ap(targets[:, has_positives], probs[:, has_positives], average=None))
    assert np.isnan(scores.per_class["average_precision"][4])
    assert scores.summary["macro_ap"] == pytest.approx(
        sklearn_ap(targets[:, has_positives], probs[:, has_positives], average="macro"))


def test_average_precision_steps_without_interpolation_and_ties_enter_together():
    assert binary_average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    tied = (np.array([0, 1, 1, 0]), np.array([0.5, 0.5, 0.2, 0.1]))
    assert binary_average_precision(*tied) == pytest.approx(average_precision_score(*tied))
    assert np.isnan(binary_average_precision(np.zeros(3), np.array([0.1, 0.2, 0.3])))


@pytest.mark.parametrize("seed", range(5))
def test_random_heads_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(100 + seed)
    targets = rng.integers(0, 4, 40)
    probs = rng.dirichlet(np.ones(5), 40).round(1)  # coarse: many ties; class 4 never true
    scores = single_label_scores(targets, probs, rng.integers(1, 30, 5))
    predicted = probs.argmax(axis=1)
    assert scores.summary["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro", zero_division=0))
    one_hot = np.eye(5)[targets]
    present = one_hot.sum(axis=0) > 0
    assert scores.summary["macro_ap"] == pytest.approx(sklearn_ap(one_hot[:, present], probs[:, present], average="macro"))
