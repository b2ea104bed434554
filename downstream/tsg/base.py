"""The interface every grounding method implements, and the steps all three share.

A method sees collated :class:`~downstream.data.tsg.TsgDataset` batches: ``features (B, T, D)``
and ``mask (B, T)`` of each sentence's whole video, ``text`` (B strings), ``duration (B,)``
seconds and what its supervision level allows (``moment (B, 2)`` or ``glance (B,)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from downstream.task import TaskModel

Moment = tuple[float, float, float]  # (start s, end s, score); higher scores rank first


class TsgModel(TaskModel):
    """A grounding model. Besides ``training_loss``: ``ground(batch)`` -> per item of the batch
    the candidate moments ``(start, end, score)`` in seconds, best first."""

    def ground(self, batch: dict[str, Any]) -> list[list[Moment]]:
        raise NotImplementedError


def resample_clips(features: torch.Tensor, mask: torch.Tensor, num: int) -> torch.Tensor:
    """``(B, T, D)`` clip features of videos of ``mask.sum(1)`` clips -> ``(B, num, D)``.

    Bin i averages clips ``[s_i, s_{i+1})`` with ``s_i = round(i / num * L)`` clamped to
    ``L - 1`` (an empty bin takes clip ``s_i``): MMN's ``avgfeats`` and CPL's
    ``_sample_frame_features``, which both assume the clips cover the video evenly.
    """
    steps = features.shape[1]
    lengths = mask.sum(1).to(torch.float64)  # (B,)
    bounds = torch.round(torch.arange(num + 1, dtype=torch.float64,
                                       device=mask.device)[None] / num
                         * lengths[:, None])
    bounds = torch.minimum(bounds, lengths[:, None] - 1).long()  # (B, num + 1)
    start, end = bounds[:, :-1, None], bounds[:, 1:, None]  # (B, num, 1)
    t = torch.arange(steps, device=features.device)[None, None]  # (1, 1, T)
    inside = (t >= start) & (t < end)
    inside |= (start >= end) & (t == start)  # empty bin: the clip at its start
    weights = inside.to(features.dtype)
    weights = weights / weights.sum(-1, keepdim=True)  # (B, num, T)
    return weights @ features


def video_groups(video_ids: Sequence[str]) -> tuple[list[int], torch.Tensor]:
    """(index of the first item of each distinct video, ``(B,)`` each item's video position):
    sentences of one video in a batch share one video computation."""
    first: dict[str, int] = {}
    position = []
    for b, video in enumerate(video_ids):
        if video not in first:
            first[video] = b
        position.append(list(first).index(video))
    return list(first.values()), torch.tensor(position, dtype=torch.long)
