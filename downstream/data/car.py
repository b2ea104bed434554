"""Complex activity recognition targets: per video, the set of its unit actions and its activity.

One item per whole video (the task's default ``data.max_snippets`` is 0: a crop could drop
actions the video-level targets still name). The targets do not depend on time:

* ``video_labels (K,)`` float multi-hot over ``manifest.classes`` (the unit actions,
  ``VideoRecord.labels``; Breakfast: 48 classes, SIL included as in its mapping.txt);
* ``activity`` int64 scalar, the index of ``VideoRecord.activity`` in
  ``manifest.meta.activities`` (Breakfast: 10), or None for a video without one (a batch then
  carries None; training and validation refuse such videos up front, see ``CarTask.eval_needs``).

Methods that need a fixed number of steps sample them from the whole video themselves
(``downstream.car.base.sample_steps``), so the dataset hands out every clip.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

from data_manifests.schema import VideoRecord
from downstream.data.store_dataset import StoreDataset


class CarDataset(StoreDataset):
    """Per video: ``video_labels (K,)`` multi-hot and ``activity`` (scalar index or None)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.activities = tuple(self.manifest.meta.activities)
        self.activity_index = {name: i for i, name in enumerate(self.activities)}

    def targets(self, video: VideoRecord, key: Hashable, times: np.ndarray) -> dict[str, Any]:
        video_labels = torch.zeros(len(self.classes))
        for name in video.labels:
            video_labels[self.manifest.class_index[name]] = 1.0
        activity = (None if video.activity is None
                    else torch.tensor(self.activity_index[video.activity], dtype=torch.int64))
        return {"video_labels": video_labels, "activity": activity}
