"""MLP: two linear layers over the temporally pooled clip features (the AdaptFocus paper's
complex activity recognition baseline, Table 4: "MLP (two linear-layers)").

Every real clip of the video is averaged (``pooling="mean"``; padding excluded), then
dropout -> linear to ``hidden`` -> ReLU -> dropout -> the second linear layer, one per target
(unit actions, activity). No temporal modelling: what Timeception and GHRM add over it comes
from modelling time.

The paper gives no settings for it (no official code): hidden 512, dropout 0.5, Adam at
1e-3 without weight decay, batch 32, 100 epochs are this project's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from downstream.car.base import CarModel, HeadsConfig
from downstream.task import Method


@dataclass(frozen=True)
class MlpConfig(HeadsConfig):
    hidden: int = 512  # width of the first linear layer
    dropout: float = 0.5  # dropout on the pooled features and on the hidden layer
    pooling: Literal["mean", "max"] = "mean"  # temporal pooling over the real clips


def pool(features: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Masked temporal pooling: ``features (B, T, D)``, ``mask (B, T)`` -> ``(B, D)``."""
    m = mask[..., None]
    if how == "max":
        return features.masked_fill(~m, float("-inf")).amax(dim=1)
    return (features * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


class Mlp(CarModel):
    def __init__(self, *, feature_dim: int, num_classes: int, num_activities: int,
                 hidden: int, dropout: float, pooling: str, action_weight: float,
                 activity_weight: float):
        super().__init__()
        self.pooling = pooling
        self.action_weight, self.activity_weight = action_weight, activity_weight
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(feature_dim, hidden)
        self.actions = nn.Linear(hidden, num_classes)
        self.activity = nn.Linear(hidden, max(num_activities, 1))

    def classify(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(pool(features, mask, self.pooling))  # (B, D)
        x = self.dropout(F.relu(self.hidden(x)))  # (B, hidden)
        return self.actions(x), self.activity(x)


def build(*, feature_dim: int, num_classes: int, num_activities: int, hidden: int = 512,
          dropout: float = 0.5, pooling: str = "mean", action_weight: float = 1.0,
          activity_weight: float = 1.0) -> Mlp:
    return Mlp(feature_dim=feature_dim, num_classes=num_classes, num_activities=num_activities,
               hidden=hidden, dropout=dropout, pooling=pooling, action_weight=action_weight,
               activity_weight=activity_weight)


METHOD = Method(
    name="mlp", config=MlpConfig, build=build, needs=("labels", "activity"),
    summary="two linear layers over temporally pooled features (AdaptFocus' baseline)",
    defaults={"train.lr": 1e-3, "train.weight_decay": 0.0, "train.batch_size": 32,
              "train.epochs": 100, "data.max_snippets": 0})
