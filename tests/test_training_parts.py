"""The training loop's parts: metrics agree with scikit-learn, the schedule warms up and decays, class
weights follow label frequency, and the dataset's augmentation leaves validation untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from mmbehave.data.dataset import Augmentation, ClipDataset
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import ClassLists
from mmbehave.training.loss import MultiTaskLoss, inverse_frequency_weights
from mmbehave.training.metrics import accuracy_and_macro_f1, confusion_matrix
from mmbehave.training.monitor import metric_is_better
from mmbehave.training.schedule import warmup_cosine


def test_accuracy_and_macro_f1_match_scikit_learn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 200)
    predictions = np.where(rng.random(200) < 0.6, targets, rng.integers(0, 5, 200))
    accuracy, macro_f1 = accuracy_and_macro_f1(confusion_matrix(targets, predictions, 5))
    assert accuracy == pytest.approx(accuracy_score(targets, predictions))
    assert macro_f1 == pytest.approx(f1_score(targets, predictions, average="macro"))


def test_schedule_warms_up_linearly_then_decays_to_the_floor():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=20, warmup_steps=4, min_lr_ratio=0.1)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_class_weights_favour_rare_classes():
    weights = inverse_frequency_weights([0, 0, 0, 0, 0, 0, 1, 1, 2], num_classes=4)
    assert weights[2] > weights[1] > weights[0]
    assert torch.isfinite(weights[3]) and weights[3] > 0  # a class train never shows stays usable
    assert weights.mean().item() == pytest.approx(1.0)


def test_loss_is_the_weighted_sum_of_the_heads():
    species_logits, behavior_logits = torch.randn(6, 3), torch.randn(6, 4)
    species, behavior = torch.randint(0, 3, (6,)), torch.randint(0, 4, (6,))
    total, parts = MultiTaskLoss(species_weight=2.0, behavior_weight=0.5)(species_logits, behavior_logits, species, behavior)
    assert total.item() == pytest.approx(2.0 * parts["species_loss"].item() + 0.5 * parts["behavior_loss"].item())


def test_losses_improve_downwards_and_scores_upwards():
    assert metric_is_better("val/loss", 0.5, 0.6) and not metric_is_better("val/loss", 0.7, 0.6)
    assert metric_is_better("val/macro_f1", 0.7, 0.6) and metric_is_better("val/macro_f1", 0.1, None)


def test_augmentation_changes_training_items_only(tmp_path):
    import pandas as pd

    layout = DatasetLayout(tmp_path)
    (layout.processed_dir / "video_frames").mkdir(parents=True)
    (layout.processed_dir / "mel_spectrograms").mkdir(parents=True)
    frames = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 4, 4).contiguous() * 30
    torch.save(frames, layout.video_frames("c"))
    np.save(layout.mel_spectrogram("c"), np.random.default_rng(0).normal(size=(16, 40)).astype(np.float32))
    table = pd.DataFrame({"clip_id": ["c"], "species": ["fox"], "behavior": ["walk"]})
    classes = ClassLists(["fox"], ["walk"])
    plain = ClipDataset(layout, table, classes, ("video", "audio"), 0.0, 1.0)
    augmented = ClipDataset(layout, table, classes, ("video", "audio"), 0.0, 1.0,
                            augmentation=Augmentation(temporal_jitter=2, time_masks=2, time_mask_width=8,
                                                      freq_masks=2, freq_mask_width=4))
    first = plain[0]
    assert torch.equal(first["video"], plain[0]["video"]) and torch.equal(first["audio"], plain[0]["audio"])
    assert first["video"].shape == (3, 8, 4, 4) and first["video"].max() <= 1.0
    torch.manual_seed(1)
    items = [augmented[0] for _ in range(10)]
    assert any(not torch.equal(it["audio"], first["audio"]) for it in items), "SpecAugment never masked"
    assert any(not torch.equal(it["video"], first["video"]) for it in items), "temporal jitter never shifted"
    for item in items:  # jitter repeats edge frames, never wraps: frame values stay in order
        per_frame = item["video"][0, :, 0, 0]
        assert torch.all(per_frame[1:] >= per_frame[:-1])
