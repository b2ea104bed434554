"""Localization targets on the feature grid: one item per video of a manifest split.

Each item carries, besides the store's features and timestamps (:mod:`store_dataset`),
multi-hot video labels ``(K,)``, snippet labels ``(T, K)`` from the manifest segments (when the
dataset has them) and point labels ``(T, K)`` (each annotated point mapped to the snippet whose
timestamp is nearest; only when the method trains on points).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from data_manifests.schema import VideoRecord, labels_at_times
from downstream.data.store_dataset import StoreDataset


class TalDataset(StoreDataset):
    per_step: ClassVar[dict[str, float]] = {"snippet_labels": 0.0, "point_labels": 0.0}

    def targets(self, video: VideoRecord, key: Hashable, times: np.ndarray) -> dict[str, Any]:
        video_labels = torch.zeros(len(self.classes))
        for name in video.labels:
            video_labels[self.manifest.class_index[name]] = 1.0
        snippet = None
        if video.segments is not None:
            snippet = torch.from_numpy(labels_at_times(video, self.classes, times)
                                       .astype(np.float32))
        points = None
        if "points" in self.needs:
            points = torch.from_numpy(point_targets(video, self.classes, times))
        return {"video_labels": video_labels, "snippet_labels": snippet, "point_labels": points}


def point_targets(video: VideoRecord, classes: Sequence[str], times: np.ndarray) -> np.ndarray:
    """``(T, K)`` float: 1 at the snippet nearest to each annotated point of the class.

    Points outside ``[times[0] - step, times[-1] + step]`` (a crop that does not hold them) are
    dropped rather than piled onto the window edge.
    """
    out = np.zeros((len(times), len(classes)), dtype=np.float32)
    if not video.points or len(times) == 0:
        return out
    index = {name: i for i, name in enumerate(classes)}
    step = float(np.median(np.diff(times))) if len(times) > 1 else float("inf")
    for point in video.points:
        if not times[0] - step <= point.time <= times[-1] + step:
            continue
        out[int(np.argmin(np.abs(times - point.time))), index[point.label]] = 1.0
    return out
