"""The interface every localization method implements (the task sees only this)."""

from __future__ import annotations

import torch

from downstream.task import TaskModel


class TalModel(TaskModel):
    """A weakly supervised localizer on ``(B, T, D)`` clip features.

    Besides ``training_loss`` (:class:`~downstream.task.TaskModel`): ``localize(features,
    mask)`` -> video scores ``(B, K)`` in [0, 1] and a class activation sequence ``(B, T, K)``
    in [0, 1] that post-processing thresholds; methods with a class-agnostic actionness
    (ASL, LACP) return it third, ``(B, T)``, for ``post.actionness_thresholds``.
    """

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError
