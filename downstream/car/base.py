"""What every complex activity recognition method shares: the interface, the two-head loss,
fixed-length sampling of the clip sequence and Timeception's classifier head.

Two targets per video (``downstream.data.car``): the multi-label set of unit actions (scored
by Charades mAP) and the single-label complex activity (accuracy). Timeception's official code
trains one of them per run (``CLASSIFICATION_TYPE``: ``ml`` = sigmoid + binary cross entropy,
``sl`` = softmax + cross entropy); here one model has both heads on a shared body and the loss
is ``action_weight * BCE + activity_weight * CE`` (set a weight to 0 for the official
one-target runs; the other head then stays untrained and its metric means nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from downstream.task import TaskModel


@dataclass(frozen=True)
class HeadsConfig:
    """The loss weights every car method's config starts with."""
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"hidden"})

    action_weight: float = 1.0  # weight of the unit-action BCE (Timeception's "ml" runs: 1)
    activity_weight: float = 1.0  # weight of the activity cross entropy ("sl" runs: 1)


def car_loss(action_logits: torch.Tensor, activity_logits: torch.Tensor,
             video_labels: torch.Tensor, activity: torch.Tensor | None, *,
             action_weight: float, activity_weight: float
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """``action_weight * BCE(actions (B, K), labels (B, K)) + activity_weight * CE(activity
    logits (B, A), activity (B,))``; BCE is the mean over videos and classes (Keras'
    ``binary_crossentropy``), CE the mean over videos."""
    bce = F.binary_cross_entropy_with_logits(action_logits, video_labels)
    terms = {"loss_actions": bce.item()}
    loss = action_weight * bce
    if activity_weight > 0:
        if activity is None:
            raise ValueError("a training batch has videos without an activity; "
                             "the car methods declare needs=('activity',)")
        ce = F.cross_entropy(activity_logits, activity)
        loss = loss + activity_weight * ce
        terms["loss_activity"] = ce.item()
    return loss, terms


def sample_steps(mask: torch.Tensor, num_steps: int, *, jitter: bool) -> torch.Tensor:
    """Indices ``(B, num_steps)`` int64 of ``num_steps`` clips spread uniformly over each video.

    A video of ``L`` real steps (``mask (B, T)``, real steps first) is cut into ``num_steps``
    equal bins ``[i L / N, (i + 1) L / N)``. Without ``jitter`` each bin gives the clip at its
    centre (deterministic: evaluation); with ``jitter`` a clip drawn uniformly inside the bin
    (training: every clip is seen over the epochs, the order is kept). A video shorter than
    ``num_steps`` repeats clips (bins narrower than one clip share it), as Timeception's
    ordered sampling does. Padding is never chosen. The jitter comes from torch's CPU generator
    (seeded by ``train.seed`` and restored on resume) on every device.
    """
    lengths = mask.sum(dim=1).to(torch.float64).clamp(min=1)  # (B,)
    bins = torch.arange(num_steps, dtype=torch.float64, device=mask.device)  # (N,)
    start = bins[None, :] * lengths[:, None] / num_steps  # (B, N)
    width = lengths[:, None] / num_steps  # (B, 1)
    if jitter:
        offset = torch.rand(start.shape, dtype=torch.float64).to(mask.device)
    else:
        offset = torch.full_like(start, 0.5)
    index = torch.floor(start + offset * width).to(torch.int64)
    return torch.minimum(index, lengths[:, None].to(torch.int64) - 1)


def gather_steps(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``features (B, T, D)`` at ``index (B, N)`` -> ``(B, N, D)``."""
    return torch.gather(features, 1, index[..., None].expand(-1, -1, features.shape[-1]))


class ClassifierHead(nn.Module):
    """Timeception's classifier (``experiments/train_pytorch.py``, ``train_keras.py``): dropout
    0.5 -> dense 512 -> batch norm -> LeakyReLU(0.2) -> dropout 0.25 -> dense to the classes;
    here the last dense layer is two, one per target. A training batch of one video (the last
    of an epoch) normalises with the running statistics, as batch norm cannot use one sample."""

    def __init__(self, in_dim: int, num_classes: int, num_activities: int, *, hidden: int,
                 dropout: float, dropout_hidden: float):
        super().__init__()
        self.dropout_in = nn.Dropout(dropout)
        self.dense = nn.Linear(in_dim, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.dropout_hidden = nn.Dropout(dropout_hidden)
        self.actions = nn.Linear(hidden, num_classes)
        self.activity = nn.Linear(hidden, max(num_activities, 1))

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pooled (B, C)`` -> action logits ``(B, K)``, activity logits ``(B, A)``."""
        x = self.dense(self.dropout_in(pooled))  # (B, hidden)
        if self.training and x.shape[0] == 1:
            x = F.batch_norm(x, self.norm.running_mean, self.norm.running_var,
                             self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        else:
            x = self.norm(x)
        x = self.dropout_hidden(F.leaky_relu(x, 0.2))
        return self.actions(x), self.activity(x)


class CarModel(TaskModel):
    """A complex activity recognition model on ``(B, T, D)`` clip features.

    ``classify(features, mask)`` -> unit-action logits ``(B, K)`` and activity logits
    ``(B, A)`` of whole videos (padded steps, ``mask`` False, must not change them); the task
    ranks the first (Charades mAP) and takes the argmax of the second (accuracy).
    """

    action_weight: float = 1.0
    activity_weight: float = 1.0

    def classify(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        actions, activity = self.classify(batch["features"], batch["mask"])
        return car_loss(actions, activity, batch["video_labels"], batch["activity"],
                        action_weight=self.action_weight, activity_weight=self.activity_weight)
