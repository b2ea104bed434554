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

The defaults are those of the official code (layer6ai-labs/ASL, models/asl_model.py,
main_thumos.py, config/config_thumos.py, scripts/train.sh): F and G are per-snippet (kernel 1)
two-layer networks 512 wide without dropout; G is two heads, one on each half of the features
(I3D's RGB | flow), each with its own GCE loss, and selection averages the class probability
with both, h = (softmax(s) + a_rgb + a_flow) / 3, i.e. beta = 2/3 on the heads' mean; Adam at
1e-4 with weight decay 5e-4, 16 videos per batch, 100 epochs, every video resampled to 750
snippets; post-processing with class threshold 0.25, the sequence upsampled 24x, outer flank
0.2, gamma 0.2 and BaS-Net's decayed NMS (IoU 0.4, alpha 0.35, lengths + 1 s).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from data_manifests.config import ConfigError
from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, topk_count, topk_mask, video_cross_entropy
from downstream.task import Method


@dataclass(frozen=True)
class AslConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"hidden", "kernel_size", "q", "topk_ratio"})
    hidden: int = 512  # width of F's and G's hidden layers (official: 512)
    kernel_size: int = 1  # temporal kernel of both embeddings (official: 1, per snippet)
    dropout: float = 0.0  # dropout after each embedding (official: none)
    # "split": one actionness head on each half of the features (RGB | flow), each with its own
    # GCE loss, as the official code; "single": one head on all of them (the paper's Fig. 2).
    actionness_heads: Literal["split", "single"] = "split"
    topk_ratio: int = 8  # k = T // topk_ratio (Sec. 4, "k = T/8")
    # Weight of the (mean) actionness in h = beta * a + (1 - beta) * softmax(s) (Eq. 6); the
    # official (softmax + a_rgb + a_flow) / 3 is beta = 2/3.
    beta: float = 2 / 3
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


class ActionnessHead(nn.Module):
    """G on ``features[..., part]``: embedding + linear + sigmoid -> ``(B, T)`` in (0, 1)."""

    def __init__(self, part: slice, in_dim: int, hidden: int, kernel_size: int, dropout: float):
        super().__init__()
        self.part = part
        self.embed = Embedding(in_dim, hidden, kernel_size, dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.embed(features[..., self.part], mask))).squeeze(2)


class Asl(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, hidden: int, kernel_size: int,
                 dropout: float, actionness_heads: str, topk_ratio: int, beta: float, q: float):
        super().__init__()
        self.topk_ratio, self.beta, self.q = topk_ratio, beta, q
        self.f_embed = Embedding(feature_dim, hidden, kernel_size, dropout)  # classifier F
        self.f_head = nn.Linear(hidden, num_classes)
        if actionness_heads == "split":
            if feature_dim % 2:
                raise ConfigError(f"asl.actionness_heads=split needs features of an even "
                                  f"dimension (RGB | flow halves); these have {feature_dim} "
                                  "(--set asl.actionness_heads=single)")
            half = feature_dim // 2
            parts = [slice(0, half), slice(half, feature_dim)]
        else:
            parts = [slice(0, feature_dim)]
        self.heads = nn.ModuleList(  # actionness G, one head per part
            ActionnessHead(p, p.stop - p.start, hidden, kernel_size, dropout) for p in parts)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        cas = self.f_head(self.f_embed(features, mask))  # (B, T, K) logits s
        heads = torch.stack([head(features, mask) for head in self.heads], dim=2)  # (B, T, G)
        actionness = heads.mean(dim=2, keepdim=True)  # (B, T, 1) a
        h = selection_scores(actionness, torch.softmax(cas, dim=2), self.beta)  # (B, T, K)
        # Selection is a discrete choice: gradients reach F through the pooled logits and G
        # through L_ASL, as in the paper (Fig. 2a).
        chosen = topk_mask(h.detach(), mask, topk_count(mask, self.topk_ratio))  # (B, T, K)
        weight = chosen.to(cas.dtype)
        video_logits = (cas * weight).sum(1) / weight.sum(1).clamp(min=1)  # (B, K), Eq. 3
        return {"cas": cas, "actionness": actionness.squeeze(2), "heads": heads, "h": h,
                "chosen": chosen, "video_logits": video_logits}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self(batch["features"], batch["mask"])
        loss_cls = video_cross_entropy(out["video_logits"], batch["video_labels"])  # Eq. 4
        positive = positive_set(out["chosen"], batch["video_labels"])
        loss_asl = sum(generalized_cross_entropy(out["heads"][..., g], positive, batch["mask"],
                                                 self.q) for g in range(out["heads"].shape[2]))
        loss = loss_cls + loss_asl
        return loss, {"loss_cls": loss_cls.item(), "loss_asl": loss_asl.item()}

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        return torch.softmax(out["video_logits"], dim=1), out["h"], out["actionness"]


def build(*, feature_dim: int, num_classes: int, **options: Any) -> Asl:
    """The model with ``options`` over :class:`AslConfig`'s defaults."""
    return Asl(feature_dim=feature_dim, num_classes=num_classes,
               **{**dataclasses.asdict(AslConfig()), **options})


# layer6ai-labs/ASL, inference_thumos.py and utils/misc_utils.py: the OIC flank is 0.2, not the
# function's 0.25, because inference passes its gamma (0.2) into the flank's positional slot;
# scripts/train.sh turns soft_nms on (BaS-Net's decayed NMS, alpha 0.35, IoU 0.4).
OFFICIAL_POST = {"post.thresholds": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                 "post.class_threshold": 0.25, "post.upsample": 24, "post.oic_delta": 0.2,
                 "post.gamma": 0.2, "post.suppression": "decayed-nms", "post.nms_iou": 0.4,
                 "post.soft_nms_sigma": 0.35, "post.iou_length_offset": 1.0,
                 "post.max_per_video": 0}

METHOD = Method(name="asl", config=AslConfig, build=build,
                summary="ASL, action selection learning (Ma et al., CVPR 2021)",
                defaults={"train.lr": 1e-4, "train.weight_decay": 5e-4, "train.batch_size": 16,
                          "train.epochs": 100, "data.resample": 750, **OFFICIAL_POST})
