"""One clip's attention maps as a figure: over its frames (time × space) and over its log-mel spectrogram.

    frames            frame 1 .. frame T                       (the model's input frames)
    CLS → video       each frame with its tubelet's attention   ─┐ one colour scale per row,
    bottlenecks → video                                         ─┘ colour bar on the right
    audio             log-mel | CLS → audio | bottlenecks → audio  (attention cells over the spectrogram)

Each tubelet spans ``tubelet_size`` frames, so consecutive frames share a map. The audio tokens are
ResNet18 layer4 cells of 32 mel bands × 32 frames (the last row / column may be cut by the edge).
``attention_figures`` picks clips of a split, runs the model with attention on and writes one figure each.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mmbehave.analysis.attention_maps import TokenAttention
from mmbehave.core.errors import ConfigError
from mmbehave.core.figures import plt, save_figure

log = logging.getLogger(__name__)

HEAT = "inferno"
AUDIO_CELL = 32  # mel bands / frames per ResNet18 layer4 cell (×32 downsampling)
QUERY_LABELS = {"cls": "CLS", "bottlenecks": "bottlenecks"}


def _row_label(axis, text: str) -> None:
    axis.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9)


def _alpha(weights: np.ndarray, vmax: float) -> np.ndarray:
    """Per-cell opacity growing with the attention: the input stays visible where the model hardly looks."""
    return 0.15 + 0.7 * np.clip(weights / vmax, 0.0, 1.0)


def _bare(axis) -> None:
    axis.set_xticks([])
    axis.set_yticks([])


def plot_clip_attention(frames: np.ndarray | None, mel: np.ndarray | None, maps: dict[tuple[str, str], TokenAttention],
                        title: str, path: str | Path) -> Path:
    """frames: (T, H, W, 3) floats in [0, 1] or None (no video); mel: (n_mels, time) or None (no audio);
    maps: {(modality, query): TokenAttention} from ``clip_attention_maps``."""
    video_queries = [q for q in QUERY_LABELS if ("video", q) in maps] if frames is not None else []
    audio_queries = [q for q in QUERY_LABELS if ("audio", q) in maps] if mel is not None else []
    columns = len(frames) if frames is not None else 6
    rows = (1 + len(video_queries) if frames is not None else 0) + (1 if mel is not None else 0)
    figure = plt.figure(figsize=(1.25 * columns + 2.2, 1.45 * rows + 1.6 * (mel is not None) + 0.6))
    heights = [1.0] * (rows - (mel is not None)) + ([2.2] if mel is not None else [])
    grid = figure.add_gridspec(rows, columns + 1, width_ratios=[1.0] * columns + [0.08], height_ratios=heights,
                               hspace=0.3, wspace=0.05)
    row = 0
    if frames is not None:
        row = _video_rows(figure, grid, frames, [maps[("video", q)] for q in video_queries], video_queries)
    if mel is not None:
        _audio_row(figure, grid, row, columns, mel, [maps[("audio", q)] for q in audio_queries], audio_queries)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def _video_rows(figure, grid, frames: np.ndarray, maps: list[TokenAttention], queries: list[str]) -> int:
    num_frames, height, width = frames.shape[:3]
    for column, frame in enumerate(frames):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(frame, interpolation="nearest")
        axis.set_title(f"frame {column + 1}", fontsize=8)
        _bare(axis)
        if column == 0:
            _row_label(axis, "frames")
    for row, (attention, query) in enumerate(zip(maps, queries), start=1):
        weights = attention.weights  # (t, h, w)
        frames_per_step = num_frames / weights.shape[0]
        vmax = float(weights.max()) or 1.0
        image = None
        for column, frame in enumerate(frames):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(frame.mean(axis=-1), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            heat = weights[min(int(column / frames_per_step), weights.shape[0] - 1)]
            image = axis.imshow(heat, cmap=HEAT, alpha=_alpha(heat, vmax), vmin=0.0, vmax=vmax, interpolation="nearest",
                                extent=(-0.5, width - 0.5, height - 0.5, -0.5))
            _bare(axis)
            if column == 0:
                _row_label(axis, f"{QUERY_LABELS[query]} → video\n({attention.share:.0%} of its\nattention)")
        figure.colorbar(image, cax=figure.add_subplot(grid[row, -1]), label="attention")
    return 1 + len(maps)


def _audio_row(figure, grid, row: int, columns: int, mel: np.ndarray, maps: list[TokenAttention],
               queries: list[str]) -> None:
    panels = 1 + len(maps)
    bounds = np.linspace(0, columns, panels + 1).round().astype(int)
    n_mels, mel_frames = mel.shape
    axis = figure.add_subplot(grid[row, bounds[0]:bounds[1]])
    image = axis.imshow(mel, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    axis.set_title("log-mel spectrogram (standardised)", fontsize=8)
    axis.set_xlabel("mel frame", fontsize=8)
    axis.set_ylabel("mel band", fontsize=8)
    axis.tick_params(labelsize=7)
    heat_image = None
    vmax = max((float(m.weights.max()) for m in maps), default=1.0) or 1.0  # one scale: one colour bar
    for panel, (attention, query) in enumerate(zip(maps, queries), start=1):
        axis = figure.add_subplot(grid[row, bounds[panel]:bounds[panel + 1]])
        axis.imshow(mel, origin="lower", aspect="auto", cmap="gray", interpolation="nearest")
        weights = attention.weights  # (F', T')
        heat_image = axis.imshow(weights, origin="lower", aspect="auto", cmap=HEAT, alpha=_alpha(weights, vmax), vmin=0.0,
                                 vmax=vmax, interpolation="nearest",
                                 extent=(-0.5, weights.shape[1] * AUDIO_CELL - 0.5, -0.5, weights.shape[0] * AUDIO_CELL - 0.5))
        axis.set_xlim(-0.5, mel_frames - 0.5)
        axis.set_ylim(-0.5, n_mels - 0.5)
        axis.set_title(f"{QUERY_LABELS[query]} → audio ({attention.share:.0%} of its attention)", fontsize=8)
        axis.set_xlabel("mel frame", fontsize=8)
        axis.set_yticks([])
        axis.tick_params(labelsize=7)
    colourbar_axis = figure.add_subplot(grid[row, -1])
    if heat_image is not None:
        figure.colorbar(heat_image, cax=colourbar_axis, label="attention")
    else:
        figure.colorbar(image, cax=colourbar_axis, label="log-mel (std units)")


def head_caption(head, names: list[str], target, probs, thresholds) -> str:
    """``true X, predicted Y (0.93)`` for a single head; the label sets of a multi head."""
    if head.multi:
        chosen = probs >= (thresholds if thresholds is not None else 0.5)
        true, predicted = head.labels_text(names, target), head.labels_text(names, chosen) or "-"
        return f"{head.name} true {true}, predicted {predicted}"
    return f"{head.name} true {names[int(target)]}, predicted {names[probs.argmax()]} ({probs.max():.2f})"


def attention_figures(trained, dataset, predictions, out_dir: Path, count: int, layer: int, device: str) -> list[Path]:
    """Attention figures for ``count`` clips (different classes of the first single-label head first); [] for
    a fusion without attention."""
    import torch

    from mmbehave.analysis.attention_maps import (
        clip_attention_maps,
        num_bottlenecks,
        pick_clips,
    )
    from mmbehave.analysis.predictions import encoder_inputs_and_presence
    from mmbehave.data.dataset import collate

    if count <= 0:
        return []
    try:
        num_bottlenecks(trained.model)
    except ValueError as reason:
        log.info("No attention figures: %s", reason)
        return []
    first = next((head for head in trained.heads if not head.multi), None)
    indices = pick_clips(dataset.targets[first.name] if first else [0] * len(dataset), count)
    items = [dataset[i] for i in indices]
    inputs, present = encoder_inputs_and_presence(collate(items), torch.device(device))
    with torch.no_grad():
        output = trained.model(**inputs, **{f"{m}_present": f for m, f in present.items()}, return_attention=True)
    video_shape = tuple(items[0]["video"].shape) if "video" in items[0] else None
    mel_shape = tuple(items[0]["audio"].shape[1:]) if "audio" in items[0] else None
    layers = len(next(iter(output.attentions.values())))
    if not -layers <= layer < layers:
        raise ConfigError(f"attention.layer={layer}: the model has {layers} fusion layer(s); use 0..{layers - 1} or -1.")
    maps = clip_attention_maps(trained.model, output.attentions, video_shape, mel_shape, layer)
    shown = f"fusion layer {range(1, layers + 1)[layer]} of {layers}"
    classes, paths = trained.classes, []
    position = {clip_id: i for i, clip_id in enumerate(predictions.clip_ids)}
    for item, clip_maps in zip(items, maps):
        row = position[item["clip_id"]]
        captions = [head_caption(head, classes[head.name], item["targets"][head.name],
                                 predictions.probs["all"][head.name][row], trained.thresholds.get(head.name))
                    for head in trained.heads]
        title = f"{item['clip_id']}: " + "; ".join(captions) + f"; {shown}"
        frames = item["video"].permute(1, 2, 3, 0).numpy() if "video" in item else None
        mel = item["audio"][0].numpy() if "audio" in item else None
        paths.append(plot_clip_attention(frames, mel, clip_maps, title, out_dir / "attention" / f"{item['clip_id']}.png"))
    return paths
