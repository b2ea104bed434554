"""Pieces that several localization methods share (top-k pooling, masking, OIC)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NEG = -1e4  # stands for -inf in masked logits without producing NaN in softmax/backward


def topk_count(mask: torch.Tensor, ratio: int) -> torch.Tensor:
    """``(B,)`` long: k = max(1, valid_T // ratio) per video (the papers' k = T/8)."""
    return torch.clamp(mask.sum(dim=1) // ratio, min=1)


def topk_mask(scores: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` bool: for each video and class the k[b] snippets with the highest score.

    ``scores (B, T, C)``; padded snippets (``mask`` False) are never selected.
    """
    masked = scores.masked_fill(~mask[..., None], float("-inf"))
    order = masked.argsort(dim=1, descending=True)  # (B, T, C)
    rank = torch.empty_like(order)
    positions = torch.arange(scores.shape[1], device=scores.device)[None, :, None]
    rank.scatter_(1, order, positions.expand_as(order))
    return (rank < k[:, None, None]) & mask[..., None]


def topk_mean(values: torch.Tensor, mask: torch.Tensor, ratio: int,
              select_by: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C)``: mean of ``values (B, T, C)`` over the top-k snippets per class.

    The top-k set is chosen by ``select_by`` (default: ``values``), k = valid_T // ratio.
    """
    chosen = topk_mask(values if select_by is None else select_by, mask, topk_count(mask, ratio))
    chosen = chosen.to(values.dtype)
    return (values * chosen).sum(dim=1) / chosen.sum(dim=1).clamp(min=1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, ...)``: mean over the valid snippets of ``values (B, T, ...)``."""
    weight = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2)))
    return (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1)


def outer_inner_contrast(seq: Any, start: int, end: int, delta: float = 0.25) -> Any:
    """Outer-inner contrast of ``seq[start:end + 1]`` (inclusive snippet indices).

    Mean inside minus mean over the flanks of ``int(delta * length)`` snippets each side
    (clipped to the sequence; 0 when there are none), as in the OIC of AutoLoc (Shou et al.,
    ECCV 2018) used by ASL, RSKP and LACP. Works on numpy arrays and (differentiably) on
    torch tensors.
    """
    length = end - start + 1
    inner = seq[start:end + 1].mean()
    outer_s = max(0, int(start - delta * length))
    outer_e = min(len(seq) - 1, int(end + delta * length))
    count = (start - outer_s) + (outer_e - end)
    if count <= 0:
        return inner - 0.0
    outer = (seq[outer_s:start].sum() + seq[end + 1:outer_e + 1].sum()) / count
    return inner - outer


class Embedding(nn.Module):
    """Temporal conv embedding ``(B, T, D) -> (B, T, H)``: conv(kernel) + ReLU + dropout."""

    def __init__(self, in_dim: int, hidden: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, hidden, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask[..., None]  # padded snippets must not leak into their neighbours
        out = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.dropout(out) * mask[..., None]


def video_cross_entropy(video_logits: torch.Tensor, video_labels: torch.Tensor) -> torch.Tensor:
    """Multi-label MIL loss: ``-sum_c y_c/|y| log softmax(v)_c``, averaged over the batch.

    ``video_logits (B, K)``, ``video_labels (B, K)`` multi-hot (W-TALC Eq. 3).
    """
    target = video_labels / video_labels.sum(dim=1, keepdim=True).clamp(min=1)
    return -(target * torch.log_softmax(video_logits, dim=1)).sum(dim=1).mean()
