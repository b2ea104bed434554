"""PNG plots of a stage-1 run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_video_predictions(path: str | Path, *, video_id: str, times: np.ndarray,
                           scores: np.ndarray, truth: np.ndarray, classes: Sequence[str],
                           class_indices: Sequence[int]) -> Path:
    """Paper Figure 4: one panel per class, prediction (red) against ground truth (black).

    ``times`` (T,) clip centres in s; ``scores`` (T, K) probabilities; ``truth`` (T, K) {0,1}.
    """
    plt = _pyplot()
    n = max(1, len(class_indices))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False)
    for ax, k in zip(axes.flat, class_indices):
        ax.plot(times, truth[:, k], color="black", label="ground truth")
        ax.plot(times, scores[:, k], color="red", label="prediction")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(classes[k], fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(video_id, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_training_curves(path: str | Path, records: Iterable[dict]) -> Path:
    """Loss, learning rate and ASE success ratio against the step, from metrics.jsonl."""
    plt = _pyplot()
    records = list(records)
    panels = [("loss", "loss"), ("lr", "learning rate"), ("ase_success", "ASE top-1 success"),
              ("above_threshold", "share of positives >= a_hat")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6))
    for ax, (key, title) in zip(axes, panels):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None and "step" in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="." if len(points) < 30 else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
