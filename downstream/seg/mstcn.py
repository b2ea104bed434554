"""MS-TCN: multi-stage temporal convolutional network (Farha and Gall, "MS-TCN: Multi-Stage
Temporal Convolutional Network for Action Segmentation", CVPR 2019).

* A stage (Sec. 3.1): a 1x1 conv to ``num_f_maps`` channels, ``num_layers`` dilated residual
  layers (dilation 2^l, kernel 3: dilated conv -> ReLU -> 1x1 conv -> dropout, added to the
  input), a 1x1 conv to the classes. Stage 1 reads the features; every later stage reads the
  softmax of the previous stage's output (Sec. 3.2). Padded steps are masked after every stage.
* Loss per stage (Eq. 5-7): cross entropy of every step + lambda times the truncated MSE of the
  log-probabilities of neighbouring steps (tau = 4, so the clamp is at tau^2 = 16; the previous
  step's are detached), lambda = 0.15; summed over the stages.
* The paper's settings for Breakfast (and the official ``main.py``): 4 stages, 10 layers, 64
  feature maps, dropout 0.5, Adam at lr 5e-4 without weight decay, batch 1, 50 epochs.
  Prediction is the last stage's argmax.

Deliberate difference: the official code scores the test set with the last epoch's weights;
here a run selects its checkpoint on the validation split (``predict --checkpoint last`` gives
the official choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from downstream.data.seg import IGNORE
from downstream.seg.base import SegModel
from downstream.task import Method


@dataclass(frozen=True)
class MstcnConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"num_f_maps", "num_layers", "num_stages"})
    num_stages: int = 4  # stages (1 prediction + refinements)
    num_layers: int = 10  # dilated residual layers per stage (dilations 1 .. 2^(L-1))
    num_f_maps: int = 64  # channels inside a stage
    dropout: float = 0.5  # dropout in each residual layer
    smooth_weight: float = 0.15  # lambda of the truncated MSE smoothing loss (Eq. 7)
    smooth_clamp: float = 16.0  # tau^2: per-step squared differences are clamped at this


def smoothing_loss(logits: torch.Tensor, mask: torch.Tensor, clamp: float) -> torch.Tensor:
    """Eq. 6: mean over valid neighbour pairs and classes of
    ``min((log p_t - log p_{t-1})^2, clamp)``; ``logits (B, T, C)``, ``mask (B, T)``."""
    logp = F.log_softmax(logits, dim=-1)
    diff = (logp[:, 1:] - logp[:, :-1].detach()) ** 2  # (B, T - 1, C)
    pair = (mask[:, 1:] & mask[:, :-1]).to(logits.dtype)[..., None]
    values = torch.clamp(diff, min=0, max=clamp) * pair
    return values.sum() / (pair.sum() * logits.shape[-1]).clamp(min=1)


def stage_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
               smooth_weight: float, clamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross entropy over the labelled steps, truncated MSE) of one stage's ``(B, T, C)``."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                         ignore_index=IGNORE)
    return ce, smooth_weight * smoothing_loss(logits, mask, clamp)


class DilatedResidual(nn.Module):
    def __init__(self, dilation: int, channels: int, dropout: float):
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T)``, ``mask (B, 1, T)`` float."""
        out = self.dropout(self.pointwise(F.relu(self.dilated(x))))
        return (x + out) * mask


class Stage(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, num_layers: int, channels: int,
                 dropout: float):
        super().__init__()
        self.inp = nn.Conv1d(in_dim, channels, 1)
        self.layers = nn.ModuleList(DilatedResidual(2 ** i, channels, dropout)
                                    for i in range(num_layers))
        self.out = nn.Conv1d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, D, T)`` -> logits ``(B, C, T)``."""
        x = self.inp(x)
        for layer in self.layers:
            x = layer(x, mask)
        return self.out(x) * mask


class MsTcn(SegModel):
    def __init__(self, *, feature_dim: int, num_classes: int, num_stages: int, num_layers: int,
                 num_f_maps: int, dropout: float, smooth_weight: float, smooth_clamp: float):
        super().__init__()
        out = num_classes + 1  # background last
        self.stages = nn.ModuleList(
            Stage(feature_dim if s == 0 else out, out, num_layers, num_f_maps, dropout)
            for s in range(num_stages))
        self.smooth_weight, self.smooth_clamp = smooth_weight, smooth_clamp

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's logits ``(B, T, K + 1)``."""
        m = mask[:, None, :].to(features.dtype)  # (B, 1, T)
        x = features.transpose(1, 2) * m
        outputs = []
        for s, stage in enumerate(self.stages):
            x = stage(x if s == 0 else F.softmax(x, dim=1) * m, m)  # (B, C, T)
            outputs.append(x.transpose(1, 2))
        return outputs

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        ce_total = smooth_total = 0.0
        for logits in self(batch["features"], batch["mask"]):
            ce, smooth = stage_loss(logits, batch["frame_labels"], batch["mask"],
                                    self.smooth_weight, self.smooth_clamp)
            ce_total = ce_total + ce
            smooth_total = smooth_total + smooth
        loss = ce_total + smooth_total
        return loss, {"loss_ce": ce_total.item(), "loss_smooth": smooth_total.item()}

    def segment(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self(features, mask)[-1]


def build(*, feature_dim: int, num_classes: int, num_stages: int = 4, num_layers: int = 10,
          num_f_maps: int = 64, dropout: float = 0.5, smooth_weight: float = 0.15,
          smooth_clamp: float = 16.0) -> MsTcn:
    return MsTcn(feature_dim=feature_dim, num_classes=num_classes, num_stages=num_stages,
                 num_layers=num_layers, num_f_maps=num_f_maps, dropout=dropout,
                 smooth_weight=smooth_weight, smooth_clamp=smooth_clamp)


METHOD = Method(
    name="mstcn", config=MstcnConfig, build=build, needs=("segments",),
    summary="MS-TCN, multi-stage temporal convolutions (Farha and Gall, CVPR 2019)",
    defaults={"train.lr": 5e-4, "train.weight_decay": 0.0, "train.batch_size": 1,
              "train.epochs": 50, "data.max_snippets": 0})
