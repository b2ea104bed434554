"""The interface every localization method implements (the training loop sees only this)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TalModel(nn.Module):
    """A weakly supervised localizer on ``(B, T, D)`` clip features.

    ``training_loss(batch)`` -> (scalar loss, {name: float}) for a collated batch (see
    ``downstream.data.collate_tal``); ``localize(features, mask)`` -> video scores ``(B, K)``
    in [0, 1] and a class activation sequence ``(B, T, K)`` in [0, 1] that post-processing
    thresholds. ``start_epoch`` lets a method refresh state that needs the whole training set
    (LACP's optimal sequences, RSKP's memory switch); the default does nothing.
    """

    needs: tuple[str, ...] = ()  # manifest annotations the method trains on ("points", ...)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        """Called before each training epoch with a function that yields whole-video batches."""
