"""The training loop's parts: metrics agree with scikit-learn, the schedule warms up and decays, class
weights follow label frequency, and the dataset's augmentation leaves validation untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import default_heads
from sklearn.metrics import accuracy_score, f1_score

from mmbehave.data.dataset import Augmentation, ClipDataset
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import ClassLists
from mmbehave.domain.heads import HeadSpec
from mmbehave.metrics.confusion import accuracy_and_macro_f1, confusion_matrix
from mmbehave.training.loss import (
    HeadsLoss,
    heads_loss,
    inverse_frequency_weights,
    positive_weights,
)
from mmbehave.training.monitor import is_better, mode_for
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


def test_loss_is_the_weighted_sum_of_the_heads_single_and_multi_label():
    heads = (HeadSpec("species", "species", loss_weight=2.0), HeadSpec("behavior", "behavior", loss_weight=0.5),
             HeadSpec("action", "action", "multi", loss_weight=0.25))
    logits = {"species": torch.randn(6, 3), "behavior": torch.randn(6, 4), "action": torch.randn(6, 5)}
    targets = {"species": torch.randint(0, 3, (6,)), "behavior": torch.randint(0, 4, (6,)),
               "action": torch.randint(0, 2, (6, 5)).float()}
    total, parts = HeadsLoss(heads)(logits, targets)
    assert total.item() == pytest.approx(2.0 * parts["species_loss"].item() + 0.5 * parts["behavior_loss"].item()
                                         + 0.25 * parts["action_loss"].item())
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits["action"], targets["action"])
    assert parts["action_loss"].item() == pytest.approx(bce.item())  # a multi head: one sigmoid per class


def test_a_multi_heads_rare_labels_weigh_as_their_negatives_over_positives():
    rows = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32)
    # 3 of 4 positive -> 1/3, floored at 1; 1 of 4 -> 3; never positive -> 1 (nothing to balance).
    assert positive_weights(rows).tolist() == pytest.approx([1.0, 3.0, 1.0])
    loss = heads_loss(heads=(HeadSpec("action", "action", "multi"),), train_targets={"action": rows},
                      num_classes={"action": 3})
    logits, target = torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 0.0]])
    weighted = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=positive_weights(rows))
    assert loss({"action": logits}, {"action": target})[0].item() == pytest.approx(weighted.item())


def test_losses_improve_downwards_and_scores_upwards():
    assert is_better(0.5, 0.6, mode_for("val/loss")) and not is_better(0.7, 0.6, mode_for("val/loss"))
    assert is_better(0.7, 0.6, mode_for("val/macro_f1")) and is_better(0.1, None, mode_for("val/macro_f1"))


def test_augmentation_changes_training_items_only(tmp_path):
    import pandas as pd

    layout = DatasetLayout(tmp_path)
    (layout.processed_dir / "video_frames").mkdir(parents=True)
    (layout.processed_dir / "mel_spectrograms").mkdir(parents=True)
    frames = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 4, 4).contiguous() * 30
    torch.save(frames, layout.video_frames("c"))
    np.save(layout.mel_spectrogram("c"), np.random.default_rng(0).normal(size=(16, 40)).astype(np.float32))
    table = pd.DataFrame({"clip_id": ["c"], "species": ["fox"], "behavior": ["walk"]})
    classes = ClassLists({"species": ["fox"], "behavior": ["walk"]})
    common = {"heads": default_heads(), "classes": classes, "modalities": ("video", "audio"), "mel_mean": 0.0,
              "mel_std": 1.0}
    plain = ClipDataset(layout, table, **common)
    augmented = ClipDataset(layout, table, **common,
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


@pytest.mark.parametrize("targets, predictions, num_classes", [
    ([0, 0, 1, 1], [0, 2, 1, 1], 3),          # class 2 predicted but absent from the targets
    ([0, 1, 1, 1], [0, 1, 1, 0], 4),          # class 2 and 3 neither true nor predicted
    ([2, 2, 2], [0, 1, 2], 3),                # one true class, two false alarms
])
def test_macro_f1_averages_over_true_and_predicted_classes_as_scikit_learn(targets, predictions, num_classes):
    _, macro_f1 = accuracy_and_macro_f1(confusion_matrix(np.array(targets), np.array(predictions), num_classes))
    assert macro_f1 == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))


def test_weight_decay_reaches_weight_matrices_only():
    from helpers import compose_config

    from mmbehave.core.instantiate import build
    from mmbehave.training.parts import parameter_groups

    cfg = compose_config(["data.num_frames=4", "data.image_size=32", "fusion.hidden_dim=32"])
    model = build(cfg.model, num_classes={"species": 3, "behavior": 4})
    decay, no_decay = parameter_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert decayed | exempt == {n for n, p in model.named_parameters() if p.requires_grad} and not decayed & exempt
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay  # the optimizer's own value
    for name in ("fusion.bottleneck", "fusion.cls_token.video", "fusion.position_embedding.audio",
                 "heads.species.1.bias", "fusion.final_norm.weight", "audio_encoder.backbone.bn1.weight"):
        assert name in exempt, name
    for name in ("heads.species.1.weight", "fusion.project.video.weight", "audio_encoder.backbone.conv1.weight"):
        assert name in decayed, name
    optimizer = build(cfg.optimizer)(params=parameter_groups(model))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [cfg.optimizer.weight_decay, 0.0]


class TinyClassifier(torch.nn.Module):
    """Just enough of MultiModalClassifier's interface for the loop: no dropout, no BatchNorm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.species, self.behavior = torch.nn.Linear(6, 3), torch.nn.Linear(6, 4)

    def forward(self, audio, **_):
        from mmbehave.models.classifier import ClassifierOutput

        features = audio.flatten(1)
        return ClassifierOutput({"species": self.species(features), "behavior": self.behavior(features)}, features)


def batches(sizes: list[int]) -> list[dict]:
    generator = torch.Generator().manual_seed(3)
    out = []
    for size in sizes:
        out.append({"audio": torch.randn(size, 1, 2, 3, generator=generator),
                    "targets": {"species": torch.randint(0, 3, (size,), generator=generator),
                                "behavior": torch.randint(0, 4, (size,), generator=generator)}})
    return out


def merged(groups: list[list[dict]]) -> list[dict]:
    return [{"audio": torch.cat([b["audio"] for b in group]),
             "targets": {head: torch.cat([b["targets"][head] for b in group]) for head in group[0]["targets"]}}
            for group in groups]


def trained_weights(loader: list[dict], accum: int) -> torch.Tensor:
    from mmbehave.training.loop import StepSettings, train_one_epoch

    model = TinyClassifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    train_one_epoch(model, loader, loss_fn=HeadsLoss(default_heads()), optimizer=optimizer, scheduler=scheduler,
                    step=StepSettings(device=torch.device("cpu"), grad_accum_steps=accum), epoch=0)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("accum, count", [(2, 4), (2, 5), (3, 7)])
def test_accumulating_n_batches_is_one_batch_n_times_as_large_including_the_last_group(accum, count):
    small = batches([4] * count)
    groups = [small[i:i + accum] for i in range(0, count, accum)]  # the last group is shorter when count % accum
    torch.testing.assert_close(trained_weights(small, accum), trained_weights(merged(groups), 1), atol=1e-6, rtol=1e-5)
