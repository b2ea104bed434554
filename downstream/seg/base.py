"""The interface every segmentation method implements (the task sees only this)."""

from __future__ import annotations

import torch

from downstream.task import TaskModel


class SegModel(TaskModel):
    """A temporal action segmentation model on ``(B, T, D)`` clip features.

    Besides ``training_loss``: ``segment(features, mask)`` -> class scores ``(B, T, K + 1)``
    (background last) of every step; the task takes their argmax.
    """

    def segment(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
