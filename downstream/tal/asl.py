"""ASL: action selection learning (Ma et al., "Weakly Supervised Action Selection Learning in
Video", CVPR 2021).

A classifier F gives the class activation sequence s (per-snippet class logits; its softmax
over classes is the class probability used in selection) and a class-agnostic actionness
network G gives a_t = sigmoid(G_t). Instances are selected per class by
h_{c,t} = beta * a_t + (1 - beta) * softmax(s_t)_c (Eq. 6), top-k with k = T/8 (Eq. 2); the
classifier is trained with the MIL loss on the mean logits of the selected snippets (Eq. 3-4)
and G learns to predict membership of the union of the ground-truth classes' top-k sets
(Eq. 7-8) with the generalized cross entropy, q = 0.7 (Eq. 9). Both are trained jointly
(L = L_CLS + L_ASL). Localization thresholds h (Sec. 3.2, last paragraph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, topk_count, topk_mask, video_cross_entropy
from downstream.task import Method


@dataclass(frozen=True)
class AslConfig:
    hidden: int = 256  # width of F's and G's hidden layers (the paper: 512 on I3D features)
    kernel_size: int = 3  # temporal kernel of both embeddings
    dropout: float = 0.5  # dropout after each embedding
    topk_ratio: int = 8  # k = T // topk_ratio (Sec. 4, "k = T/8")
    beta: float = 0.5  # weight of actionness in h = beta * a + (1 - beta) * s (Eq. 6)
    q: float = 0.7  # noise tolerance of the generalized cross entropy (Eq. 9)


def selection_scores(actionness: torch.Tensor, class_probs: torch.Tensor,
                     beta: float) -> torch.Tensor:
    """Eq. 6: ``h (B, T, K) = beta * a (B, T, 1) + (1 - beta) * s (B, T, K)``."""
    return beta * actionness + (1.0 - beta) * class_probs


def positive_set(chosen: torch.Tensor, video_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``(B, T)`` bool, snippets in the top-k set of any ground-truth class.

    ``chosen (B, T, K)`` bool top-k membership, ``video_labels (B, K)`` multi-hot.
    """
    return (chosen & (video_labels[:, None, :] > 0)).any(dim=2)


def generalized_cross_entropy(probs: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor,
                              q: float) -> torch.Tensor:
    """Eq. 9: ``mean_pos (1 - a^q)/q + mean_neg (1 - (1 - a)^q)/q``, averaged over videos.

    ``probs (B, T)`` actionness in (0, 1), ``positive``/``mask`` ``(B, T)`` bool. A video
    without negatives (or positives) contributes only the other term.
    """
    pos = (positive & mask).to(probs.dtype)
    neg = (~positive & mask).to(probs.dtype)
    eps = 1e-6
    loss_pos = (1.0 - probs.clamp(min=eps) ** q) / q
    loss_neg = (1.0 - (1.0 - probs).clamp(min=eps) ** q) / q
    per_video = ((loss_pos * pos).sum(1) / pos.sum(1).clamp(min=1)
                 + (loss_neg * neg).sum(1) / neg.sum(1).clamp(min=1))
    return per_video.mean()


class Asl(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, hidden: int, kernel_size: int,
                 dropout: float, topk_ratio: int, beta: float, q: float):
        super().__init__()
        self.topk_ratio, self.beta, self.q = topk_ratio, beta, q
        self.f_embed = Embedding(feature_dim, hidden, kernel_size, dropout)  # classifier F
        self.f_head = nn.Linear(hidden, num_classes)
        self.g_embed = Embedding(feature_dim, hidden, kernel_size, dropout)  # actionness G
        self.g_head = nn.Linear(hidden, 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        cas = self.f_head(self.f_embed(features, mask))  # (B, T, K) logits s
        actionness = torch.sigmoid(self.g_head(self.g_embed(features, mask)))  # (B, T, 1) a
        h = selection_scores(actionness, torch.softmax(cas, dim=2), self.beta)  # (B, T, K)
        # Selection is a discrete choice: gradients reach F through the pooled logits and G
        # through L_ASL, as in the paper (Fig. 2a).
        chosen = topk_mask(h.detach(), mask, topk_count(mask, self.topk_ratio))  # (B, T, K)
        weight = chosen.to(cas.dtype)
        video_logits = (cas * weight).sum(1) / weight.sum(1).clamp(min=1)  # (B, K), Eq. 3
        return {"cas": cas, "actionness": actionness.squeeze(2), "h": h, "chosen": chosen,
                "video_logits": video_logits}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self(batch["features"], batch["mask"])
        loss_cls = video_cross_entropy(out["video_logits"], batch["video_labels"])  # Eq. 4
        positive = positive_set(out["chosen"], batch["video_labels"])
        loss_asl = generalized_cross_entropy(out["actionness"], positive, batch["mask"], self.q)
        loss = loss_cls + loss_asl
        return loss, {"loss_cls": loss_cls.item(), "loss_asl": loss_asl.item()}

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        return torch.softmax(out["video_logits"], dim=1), out["h"]


def build(*, feature_dim: int, num_classes: int, hidden: int = 256, kernel_size: int = 3,
          dropout: float = 0.5, topk_ratio: int = 8, beta: float = 0.5, q: float = 0.7) -> Asl:
    return Asl(feature_dim=feature_dim, num_classes=num_classes, hidden=hidden,
               kernel_size=kernel_size, dropout=dropout, topk_ratio=topk_ratio, beta=beta, q=q)


METHOD = Method(name="asl", config=AslConfig, build=build,
                summary="ASL, action selection learning (Ma et al., CVPR 2021)")
