"""Segmentation targets: one class per step (background where no segment is), and the action set.

The segmentation classes are the manifest's classes plus ``background`` last (index K): a step
or frame that no segment holds is background, as in MS-TCN's label files. Where segments
overlap (Charades-like data), the class listed first in the manifest wins: segmentation is
single-label. Breakfast's ``SIL`` is one of its manifest classes and stays one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from data_manifests.schema import VideoRecord, labels_at_times
from downstream.data.store_dataset import StoreDataset

BACKGROUND = "background"
IGNORE = -100  # padded steps (cross entropy's ignore_index)


def single_labels(video: VideoRecord, classes: Sequence[str], times: np.ndarray) -> np.ndarray:
    """``(len(times),)`` int64: the class index at each time, ``len(classes)`` for background."""
    multi = labels_at_times(video, classes, times)  # (T, K) bool
    return np.where(multi.any(axis=1), multi.argmax(axis=1), len(classes)).astype(np.int64)


def frame_label_names(video: VideoRecord, classes: Sequence[str]) -> list[str]:
    """The video's ground truth as MS-TCN frame labels at its own fps (frame i at i / fps)."""
    times = np.arange(video.num_frames) / video.fps
    names = [*classes, BACKGROUND]
    return [names[i] for i in single_labels(video, classes, times)]


class SegDataset(StoreDataset):
    """Per video: ``frame_labels (T,)`` int64 on the feature grid (None without segments) and
    ``video_labels (K,)`` multi-hot, the action set (what set supervision trains on)."""

    per_step: ClassVar[dict[str, float]] = {"frame_labels": float(IGNORE)}

    def targets(self, video: VideoRecord, key: Hashable, times: np.ndarray) -> dict[str, Any]:
        labels = None
        if video.segments is not None:
            labels = torch.from_numpy(single_labels(video, self.classes, times))
        video_labels = torch.zeros(len(self.classes))
        for name in video.labels:
            video_labels[self.manifest.class_index[name]] = 1.0
        return {"frame_labels": labels, "video_labels": video_labels}
