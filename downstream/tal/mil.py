"""Plain multiple-instance baseline: class activation sequence + top-k pooling (k = T/8).

The classifier of W-TALC/STPN-style methods without any extra branch: a temporal conv
embedding, per-snippet class logits (the CAS), video logits as the mean of the top-k CAS values
per class, softmax over classes and cross entropy against the normalised multi-hot labels
(Paul et al., "W-TALC", ECCV 2018, Eq. 2-3). Localization thresholds the per-snippet class
softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, topk_mean, video_cross_entropy
from downstream.task import Method


@dataclass(frozen=True)
class MilConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"hidden", "kernel_size", "topk_ratio"})
    hidden: int = 256  # embedding width
    kernel_size: int = 3  # temporal kernel of the embedding conv
    dropout: float = 0.5  # dropout after the embedding
    topk_ratio: int = 8  # k = T // topk_ratio snippets pooled per class


class Mil(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, hidden: int, kernel_size: int,
                 dropout: float, topk_ratio: int):
        super().__init__()
        self.topk_ratio = topk_ratio
        self.embed = Embedding(feature_dim, hidden, kernel_size, dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        cas = self.classifier(self.embed(features, mask))  # (B, T, K) logits
        return {"cas": cas, "video_logits": topk_mean(cas, mask, self.topk_ratio)}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self(batch["features"], batch["mask"])
        loss = video_cross_entropy(out["video_logits"], batch["video_labels"])
        return loss, {"loss_cls": loss.item()}

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        return torch.softmax(out["video_logits"], dim=1), torch.softmax(out["cas"], dim=2)


def build(*, feature_dim: int, num_classes: int, hidden: int = 256, kernel_size: int = 3,
          dropout: float = 0.5, topk_ratio: int = 8) -> Mil:
    return Mil(feature_dim=feature_dim, num_classes=num_classes, hidden=hidden,
               kernel_size=kernel_size, dropout=dropout, topk_ratio=topk_ratio)


METHOD = Method(name="mil", config=MilConfig, build=build,
                summary="plain MIL baseline (W-TALC-style top-k pooling, ECCV 2018)")
