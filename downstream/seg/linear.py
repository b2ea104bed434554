"""A per-step linear classifier: the floor a temporal model must clear on the same features.

Each step's class (background included) from its own feature alone, trained with cross entropy
on the frame labels (full supervision). No temporal context, so everything a segmentation
method adds over it comes from modelling time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from downstream.data.seg import IGNORE
from downstream.seg.base import SegModel
from downstream.task import Method


@dataclass(frozen=True)
class LinearConfig:
    dropout: float = 0.0  # dropout on the input features


class LinearSegmenter(SegModel):
    def __init__(self, *, feature_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes + 1)

    def segment(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features))  # (B, T, K + 1)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.segment(batch["features"], batch["mask"])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               batch["frame_labels"].reshape(-1), ignore_index=IGNORE)
        return loss, {"loss_ce": loss.item()}


def build(*, feature_dim: int, num_classes: int, dropout: float = 0.0) -> LinearSegmenter:
    return LinearSegmenter(feature_dim=feature_dim, num_classes=num_classes, dropout=dropout)


METHOD = Method(
    name="linear", config=LinearConfig, build=build, needs=("segments",),
    summary="per-step linear classifier (the no-temporal-context floor)",
    defaults={"train.lr": 1e-3, "train.weight_decay": 0.0, "train.batch_size": 4,
              "train.epochs": 50, "data.max_snippets": 0})
