"""The 2D temporal moment map that MMN (after 2D-TAN) and D3G share.

From the official code (``featpool.py``, ``feat2d.py``, ``proposal_conv.py``, ``utils.py`` of
MCG-NJU/MMN; D3G's copies are the same):

* the clip features, resampled to ``num_pre_clips`` (32 on Charades-STA), go through a 1x1
  convolution to ``hidden`` (512) channels, ReLU, and average pooling (kernel 2, stride
  ``num_pre_clips // num_clips``) to ``num_clips`` = N positions (16);
* the map cell (i, j), i <= j, is the moment ``[i * d / N, (j + 1) * d / N]`` of a video of d
  seconds; the cells that exist follow ``pooling_counts`` ((15,) on Charades-STA: every i <= j).
  A cell's feature is the max pool of positions i..j (``SparseMaxPool``: max pools of kernel 2,
  stride 1 along each diagonal; a new group of counts doubles the stride);
* a stack of ``num_layers`` (8) k x k (5) convolutions with batch norm and ReLU, the first padded
  by ``(k - 1) * layers / 2`` so that the last returns an N x N map, each output multiplied by
  the reciprocal count of valid cells under its kernel; 1x1 convolutions to the joint space
  (256) give the method's heads (MMN: a contrastive and an IoU head; D3G: one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from downstream.tsg.base import Moment


def map_cells(num_clips: int, pooling_counts: Sequence[int]
              ) -> tuple[torch.Tensor, list[tuple[list[int], list[int]]]]:
    """``(N, N)`` bool mask of the map's cells and the (rows, cols) of each filled diagonal."""
    mask = torch.zeros(num_clips, num_clips, dtype=torch.bool)
    mask[range(num_clips), range(num_clips)] = True
    diagonals = []
    stride, offset = 1, 0
    for count in pooling_counts:
        for _ in range(count):
            offset += stride
            rows = list(range(0, num_clips - offset, stride))
            cols = list(range(offset, num_clips, stride))
            mask[rows, cols] = True
            diagonals.append((rows, cols))
        stride *= 2
    return mask, diagonals


def pool_steps(pooling_counts: Sequence[int]) -> list[tuple[int, int]]:
    """(kernel, stride) of the max pool that fills each diagonal in turn."""
    steps = [(2, 1)] * pooling_counts[0]
    for count in pooling_counts[1:]:
        steps += [(3, 2)] + [(2, 1)] * (count - 1)
    return steps


def check_geometry(*, num_pre_clips: int, num_clips: int, pool_kernel: int,
                   pooling_counts: Sequence[int], kernel_size: int, num_layers: int) -> None:
    """ValueError unless the options give an N x N map (a config's ``__post_init__`` calls it)."""
    stride = num_pre_clips // num_clips
    if stride < 1 or (num_pre_clips - pool_kernel) // stride + 1 != num_clips:
        raise ValueError(f"num_pre_clips={num_pre_clips} pooled with kernel {pool_kernel} and "
                         f"stride {stride} does not give num_clips={num_clips} positions")
    if (kernel_size - 1) * num_layers % 2:
        raise ValueError(f"(kernel_size - 1) * num_layers = {(kernel_size - 1) * num_layers} "
                         "must be even for the map to keep its size")
    if not pooling_counts:
        raise ValueError("pooling_counts=() must list at least one count (the official: 15)")
    offset, stride = 0, 1
    for count in pooling_counts:
        offset, stride = offset + count * stride, stride * 2
    if min(pooling_counts) < 1 or offset > num_clips - 1:
        raise ValueError(f"pooling_counts={tuple(pooling_counts)} reaches diagonal {offset} of a "
                         f"{num_clips} x {num_clips} map (at most {num_clips - 1})")


class MomentMap(nn.Module):
    """Resampled clips ``(V, num_pre_clips, D)`` -> pooled positions ``(V, hidden, N)`` and one
    ``(V, joint_dim, N, N)`` map per head (module docstring)."""

    def __init__(self, *, feature_dim: int, num_pre_clips: int, num_clips: int,
                 pool_kernel: int, pooling_counts: Sequence[int], hidden: int,
                 predictor_hidden: int, kernel_size: int, num_layers: int, joint_dim: int,
                 heads: int):
        super().__init__()
        self.num_clips = num_clips
        self.proj = nn.Conv1d(feature_dim, hidden, 1)
        self.pool = nn.AvgPool1d(pool_kernel, num_pre_clips // num_clips)
        mask, self.diagonals = map_cells(num_clips, pooling_counts)
        self.register_buffer("mask2d", mask, persistent=False)
        self.steps = pool_steps(pooling_counts)
        padding = (kernel_size - 1) * num_layers // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(hidden if i == 0 else predictor_hidden, predictor_hidden, kernel_size,
                      padding=padding if i == 0 else 0) for i in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(predictor_hidden) for _ in range(num_layers))
        self.heads = nn.ModuleList(nn.Conv2d(predictor_hidden, joint_dim, 1)
                                   for _ in range(heads))
        # Reciprocal count of valid cells under each layer's kernel (0 outside the map).
        valid = mask[None, None].float()
        for i, conv in enumerate(self.convs):
            ones = torch.ones(1, 1, kernel_size, kernel_size)
            count = torch.round(F.conv2d(valid, ones, padding=conv.padding))
            weight = torch.where(count > 0, 1.0 / count.clamp(min=1), 0.0)
            self.register_buffer(f"cell_weight{i}", weight, persistent=False)
            valid = (weight > 0).float()

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pooled = self.pool(F.relu(self.proj(clips.transpose(1, 2))))  # (V, H, N)
        n = self.num_clips
        map2d = pooled.new_zeros(*pooled.shape, n)  # (V, H, N, N)
        map2d[:, :, range(n), range(n)] = pooled
        x = pooled
        for (kernel, stride), (rows, cols) in zip(self.steps, self.diagonals):
            x = F.max_pool1d(x, kernel, stride)
            map2d[:, :, rows, cols] = x
        x = map2d
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x))) * getattr(self, f"cell_weight{i}")
        return pooled, [head(x) for head in self.heads]

    def cell_features(self, map2d: torch.Tensor) -> torch.Tensor:
        """``(V, C, N, N)`` -> ``(V, C, P)`` L2-normalized features of the P valid cells."""
        return F.normalize(map2d[..., self.mask2d], dim=1)


def cell_moments(num_clips: int, durations: torch.Tensor) -> torch.Tensor:
    """``(B, N, N, 2)`` (start, end) seconds of every cell (i, j): ``[i d / N, (j + 1) d / N]``."""
    index = torch.arange(num_clips, device=durations.device, dtype=durations.dtype)
    scale = durations[:, None, None] / num_clips
    start = (index[None, :, None] * scale).expand(-1, -1, num_clips)
    end = ((index[None, None, :] + 1) * scale).expand(-1, num_clips, -1)
    return torch.stack([start, end], dim=-1)


def iou_map(moments: torch.Tensor, durations: torch.Tensor, num_clips: int) -> torch.Tensor:
    """``(B, N, N)`` IoU of every cell with ``moments (B, 2)`` seconds (MMN's
    ``moment_to_iou2d``: intersection over hull)."""
    cells = cell_moments(num_clips, durations)  # (B, N, N, 2)
    start, end = moments[:, 0, None, None], moments[:, 1, None, None]
    inter = torch.minimum(cells[..., 1], end) - torch.maximum(cells[..., 0], start)
    hull = torch.maximum(cells[..., 1], end) - torch.minimum(cells[..., 0], start)
    return inter.clamp(min=0) / hull


def ranked_cells(scores: torch.Tensor, mask2d: torch.Tensor, duration: float) -> list[Moment]:
    """The map's valid cells as moments of a video of ``duration`` s, by descending ``scores
    (N, N)`` (ties: row-major order, as MMN lists them)."""
    n = scores.shape[-1]
    rows, cols = mask2d.nonzero(as_tuple=True)
    values = scores[rows, cols].detach().cpu().double().numpy()
    order = (-values).argsort(kind="stable")
    rows, cols = rows.cpu().numpy()[order], cols.cpu().numpy()[order]
    return [(float(i * duration / n), float((j + 1) * duration / n), float(v))
            for i, j, v in zip(rows, cols, values[order])]
