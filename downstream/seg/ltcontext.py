"""LTContext: local windowed and sparse long-term attention for action segmentation (Bahrami,
Francesca and Gall, "How Much Temporal Long-Term Context is Needed for Action Segmentation?",
ICCV 2023; official code github.com/LTContext/LTContext, ``ltc/model/ltcontext.py``).

Followed (the paper's Sec. 3 and the official model, loss and ``configs/Breakfast/LTContext.yaml``):

* A block (LTContext block): dilated conv (kernel 3, dilation 2^l) -> GELU; windowed attention
  (+ residual); long-term context attention (+ residual); 1x1 conv; dropout; added to the
  block's input. Windowed attention: queries in non-overlapping windows of ``window`` (W) steps
  attend to the keys of the window widened by W/2 on each side (2W keys). Long-term context
  attention: the sequence is cut into consecutive pieces of ``long_term`` (G) steps and the
  tokens at the same offset of every piece attend to each other, i.e. each token sees every
  G-th token of the whole video. Both attentions: one head (``num_heads``), 1x1 projections to
  half the block width for queries, keys and values, scaled dot product, dropout on the
  attention matrix, output projection GELU -> 1x1 conv back to the block width, dropout 0.1.
* A stage: channel dropout (whole input channels, Dropout1d) -> 1x1 conv -> ``num_layers``
  blocks -> 1x1 conv to the classes. Stage 1 reads the features at ``model_dim`` channels; every
  later stage reads the softmax of the previous stage's output at ``model_dim / dim_reduction``
  channels, and its attentions take their *values* from the previous stage's features (stage
  1's reduced by a 1x1 conv), their queries and keys from the stage's own.
* Loss (official ``CEplusMSE``): per stage, cross entropy + 0.17 x the MS-TCN truncated MSE of
  neighbouring log-probabilities (clamp 16, previous step detached), summed over the stages
  (``downstream.seg.mstcn.stage_loss``). Prediction: the last stage's argmax.
* Breakfast settings: 4 stages, 9 layers, model dim 64 (32 after stage 1), W = 64, G = 8,
  dropout 0.2, attention dropout 0.2, channel masking 0.3, Adam at lr 2.5e-4 with weight decay
  1e-3 (the yaml's ``10e-4``), batch 1, 150 epochs, whole videos; the official
  ``constant_cosine_decay`` schedule (``train.lr_schedule: constant_cosine``): the rate is
  constant for 15 epochs (WARMUP_EPOCHS), then follows a cosine towards 5e-5 (ETA_MIN) with a
  half period of 180 - 15 = 165 epochs (T_MAX - WARMUP_EPOCHS), so it is still above 5e-5 at
  epoch 150.

Deliberate differences and interpretations:

* Instance norm: the official flag is inverted (``USE_INSTANCE_NORM: True``, the Breakfast
  default, builds an identity), so the published Breakfast model runs without normalisation;
  ``instance_norm=False`` (default) reproduces that, ``True`` gives what the NoNorm config
  builds, computed over the valid steps only.
* W and G count feature steps, as the official ones count frames of its 15-fps Breakfast
  features (W = 64 is about 4 s there); on a store of one step per second the same W spans a
  minute. They are kept as published; scale them with ``ltcontext.window`` / ``long_term``.
* Padding: the official code trains at batch 1, where nothing is padded. Here batches of
  several videos are padded, so the input projection's output and the attention projections
  are masked as well: padded steps hold zeros and are never keys, and a video's outputs do not
  depend on what it is batched with (identical to the official computation without padding).
  Window sizes may be odd (the widened key window takes the extra step on the right).
* As in MS-TCN here, the run selects its checkpoint on the validation split; the official code
  keeps the epoch with the best sum of test metrics (``predict --checkpoint last`` gives the
  last epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from downstream.seg.base import SegModel
from downstream.seg.mstcn import stage_loss
from downstream.task import Method


@dataclass(frozen=True)
class LtcontextConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "dilation_factor", "dim_reduction", "long_term", "model_dim", "num_heads", "num_layers",
        "num_stages", "window"})
    num_stages: int = 4  # stages (1 prediction + refinements); Breakfast yaml NUM_STAGES
    num_layers: int = 9  # LTContext blocks per stage (conv dilations 2^0 .. 2^(L-1))
    model_dim: int = 64  # channels of stage 1 (MODEL_DIM)
    dim_reduction: float = 2.0  # later stages run at model_dim / this channels
    window: int = 64  # W: windowed attention's query window (keys: 2W around it)
    long_term: int = 8  # G: long-term attention links every G-th step of the whole video
    num_heads: int = 1  # attention heads (NUM_ATTN_HEADS)
    dropout: float = 0.2  # dropout at the end of each block (DROPOUT_PROB)
    attn_dropout: float = 0.2  # dropout on the attention matrices (ATTENTION.DROPOUT)
    attn_out_dropout: float = 0.1  # dropout after each attention's output projection
    channel_dropout: float = 0.3  # Dropout1d on each stage's input (CHANNEL_MASKING_PROB)
    dilation_factor: int = 2  # conv dilation of block l is this ** l
    instance_norm: bool = False  # normalise the attention inputs (off in the official yaml)
    smooth_weight: float = 0.17  # weight of the truncated MSE smoothing loss per stage
    smooth_clamp: float = 16.0  # per-step squared log-probability differences clamp at this

    def __post_init__(self) -> None:
        if min(self.num_stages, self.num_layers, self.window, self.long_term,
               self.num_heads) < 1:
            raise ValueError("ltcontext: num_stages, num_layers, window, long_term and "
                             "num_heads must be >= 1")
        for dim in (self.model_dim, int(self.model_dim // self.dim_reduction)):
            if dim < 2 or (dim // 2) % self.num_heads:
                raise ValueError(f"model_dim={self.model_dim} with dim_reduction="
                                 f"{self.dim_reduction} gives a stage width of {dim}; half of "
                                 f"every stage width must be a positive multiple of num_heads="
                                 f"{self.num_heads}")


def _pad_steps(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Zero-pad dim 1 (steps) of ``x (B, T, ...)``."""
    pad = [0, 0] * (x.dim() - 2) + [left, right]
    return F.pad(x, pad)


def windowed_groups(q: torch.Tensor, kv: torch.Tensor, valid: torch.Tensor, window: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Windowed attention's groups: queries ``(B * n, W, d)`` of the n windows of ``W`` steps,
    keys/values ``(B * n, 2W, d')`` and their validity ``(B * n, 2W)``: the window widened by
    W // 2 steps on the left and W - W // 2 on the right. ``q (B, T, d)``, ``kv (B, T, d')``."""
    batch, length = q.shape[:2]
    n = math.ceil(length / window)
    q = _pad_steps(q, 0, n * window - length).reshape(batch * n, window, -1)
    left, right = window // 2, window - window // 2 + n * window - length
    kv = _pad_steps(kv, left, right).unfold(1, 2 * window, window)  # (B, n, d', 2W)
    kv = kv.transpose(2, 3).reshape(batch * n, 2 * window, -1)
    valid = _pad_steps(valid, left, right).unfold(1, 2 * window, window)  # (B, n, 2W)
    return q, kv, valid.reshape(batch * n, 2 * window), n


def long_term_groups(x: torch.Tensor, gap: int) -> torch.Tensor:
    """``x (B, T, ...)`` -> ``(B * G, ceil(T / G), ...)``: group g holds steps g, g + G, ..."""
    batch, length, rest = x.shape[0], x.shape[1], x.shape[2:]
    n = math.ceil(length / gap)
    x = _pad_steps(x, 0, n * gap - length).reshape(batch, n, gap, *rest)
    return x.transpose(1, 2).reshape(batch * gap, n, *rest)


def undo_long_term_groups(x: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Inverse of :func:`long_term_groups` for ``x (B * G, n, d)`` -> ``(B, T, d)``."""
    gap, n = x.shape[0] // batch, x.shape[1]
    x = x.reshape(batch, gap, n, -1).transpose(1, 2).reshape(batch, n * gap, -1)
    return x[:, :length]


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
                      heads: int, dropout: float) -> torch.Tensor:
    """Scaled dot-product attention inside each group: ``q (N, Lq, d)``, ``k (N, Lk, d)``,
    ``v (N, Lk, e)``, ``valid (N, Lk)`` bool (False: never attended) -> ``(N, Lq, e)``. A group
    without a valid key attends uniformly (its queries are padding; their outputs are zeroed
    by the caller)."""
    n, lq = q.shape[:2]
    valid = valid | ~valid.any(dim=1, keepdim=True)
    q, k, v = (t.reshape(n, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    mask = valid[:, None, None, :]  # (N, 1, 1, Lk), broadcast over heads and queries
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return out.transpose(1, 2).reshape(n, lq, -1)  # (N, Lq, e)


class ContextAttention(nn.Module):
    """One of the block's two attentions (``kind``: "windowed" or "long_term"), on ``(B, C, T)``."""

    def __init__(self, kind: str, span: int, dim: int, heads: int, attn_dropout: float,
                 out_dropout: float):
        super().__init__()
        self.kind, self.span, self.heads, self.attn_dropout = kind, span, heads, attn_dropout
        half = dim // 2
        self.query = nn.Conv1d(dim, half, 1)
        self.key = nn.Conv1d(dim, half, 1)
        self.value = nn.Conv1d(dim, half, 1)
        self.out = nn.Sequential(nn.GELU(), nn.Conv1d(half, dim, 1))
        self.dropout = nn.Dropout(out_dropout)

    def forward(self, x: torch.Tensor, value: torch.Tensor | None,
                mask: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T)`` gives queries and keys, ``value (B, C, T)`` (default ``x``) the
        values; ``mask (B, 1, T)`` float. Returns ``(B, C, T)``, zero at padded steps."""
        value = x if value is None else value
        batch, length = x.shape[0], x.shape[2]
        q = (self.query(x) * mask).transpose(1, 2)  # (B, T, C/2)
        k = (self.key(x) * mask).transpose(1, 2)
        v = (self.value(value) * mask).transpose(1, 2)
        valid = mask[:, 0] > 0  # (B, T)
        dropout = self.attn_dropout if self.training else 0.0
        if self.kind == "windowed":
            qg, kv, valid_g, n = windowed_groups(q, torch.cat([k, v], dim=2), valid, self.span)
            kg, vg = kv.split(k.shape[2], dim=2)
            out = grouped_attention(qg, kg, vg, valid_g, self.heads, dropout)
            out = out.reshape(batch, n * self.span, -1)[:, :length]
        else:
            qg, kg, vg = (long_term_groups(t, self.span) for t in (q, k, v))
            valid_g = long_term_groups(valid, self.span)
            out = grouped_attention(qg, kg, vg, valid_g, self.heads, dropout)
            out = undo_long_term_groups(out, batch, length)
        out = self.dropout(self.out(out.transpose(1, 2)))  # (B, C, T)
        return out * mask


class MaskedInstanceNorm(nn.Module):
    """Instance norm over the valid steps of ``(B, C, T)`` (no affine, eps 1e-5)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        count = mask.sum(dim=2, keepdim=True).clamp(min=1)
        mean = (x * mask).sum(dim=2, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(dim=2, keepdim=True) / count
        return (x - mean) / torch.sqrt(var + 1e-5) * mask


class LtcBlock(nn.Module):
    def __init__(self, dim: int, dilation: int, cfg: LtcontextConfig):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.norm = MaskedInstanceNorm() if cfg.instance_norm else None
        args = (dim, cfg.num_heads, cfg.attn_dropout, cfg.attn_out_dropout)
        self.windowed = ContextAttention("windowed", cfg.window, *args)
        self.long_term = ContextAttention("long_term", cfg.long_term, *args)
        self.out = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(cfg.dropout)

    def _norm(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(x, mask) if self.norm is not None else x

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                value: torch.Tensor | None) -> torch.Tensor:
        """``x (B, C, T)``, ``mask (B, 1, T)``, ``value``: previous stage's features or None."""
        out = F.gelu(self.conv(x)) * mask
        out = self.windowed(self._norm(out, mask), value, mask) + out
        out = self.long_term(self._norm(out, mask), value, mask) + out
        out = self.dropout(self.out(out))
        return (x + out) * mask


class LtcStage(nn.Module):
    def __init__(self, in_dim: int, dim: int, num_classes: int, cfg: LtcontextConfig):
        super().__init__()
        self.channel_dropout = nn.Dropout1d(cfg.channel_dropout)
        self.inp = nn.Conv1d(in_dim, dim, 1)
        self.blocks = nn.ModuleList(LtcBlock(dim, cfg.dilation_factor ** i, cfg)
                                    for i in range(cfg.num_layers))
        self.out = nn.Conv1d(dim, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, value: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, D, T)`` -> (logits ``(B, K + 1, T)``, features ``(B, C, T)``)."""
        feature = self.inp(self.channel_dropout(x)) * mask
        for block in self.blocks:
            feature = block(feature, mask, value)
        return self.out(feature) * mask, feature


class LtContext(SegModel):
    def __init__(self, *, feature_dim: int, num_classes: int, cfg: LtcontextConfig):
        super().__init__()
        out = num_classes + 1  # background last
        reduced = int(cfg.model_dim // cfg.dim_reduction)
        self.first = LtcStage(feature_dim, cfg.model_dim, out, cfg)
        self.reduce = nn.Conv1d(cfg.model_dim, reduced, 1)
        self.refine = nn.ModuleList(LtcStage(out, reduced, out, cfg)
                                    for _ in range(cfg.num_stages - 1))
        self.smooth_weight, self.smooth_clamp = cfg.smooth_weight, cfg.smooth_clamp

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's logits ``(B, T, K + 1)``."""
        m = mask[:, None, :].to(features.dtype)  # (B, 1, T)
        logits, feature = self.first(features.transpose(1, 2) * m, m)
        outputs = [logits]
        feature = self.reduce(feature) * m
        for stage in self.refine:
            logits, feature = stage(F.softmax(logits, dim=1) * m, m, feature)
            outputs.append(logits)
        return [o.transpose(1, 2) for o in outputs]

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


def build(*, feature_dim: int, num_classes: int, num_stages: int, num_layers: int,
          model_dim: int, dim_reduction: float, window: int, long_term: int, num_heads: int,
          dropout: float, attn_dropout: float, attn_out_dropout: float, channel_dropout: float,
          dilation_factor: int, instance_norm: bool, smooth_weight: float,
          smooth_clamp: float) -> LtContext:
    """LTContext; every option is a field of :class:`LtcontextConfig` (defaults there)."""
    cfg = LtcontextConfig(
        num_stages=num_stages, num_layers=num_layers, model_dim=model_dim,
        dim_reduction=dim_reduction, window=window, long_term=long_term, num_heads=num_heads,
        dropout=dropout, attn_dropout=attn_dropout, attn_out_dropout=attn_out_dropout,
        channel_dropout=channel_dropout, dilation_factor=dilation_factor,
        instance_norm=instance_norm, smooth_weight=smooth_weight, smooth_clamp=smooth_clamp)
    return LtContext(feature_dim=feature_dim, num_classes=num_classes, cfg=cfg)


METHOD = Method(
    name="ltcontext", config=LtcontextConfig, build=build, needs=("segments",),
    summary="LTContext, windowed + sparse long-term attention (Bahrami et al., ICCV 2023)",
    defaults={"train.optimizer": "adam", "train.lr": 2.5e-4, "train.weight_decay": 1e-3,
              "train.batch_size": 1, "train.epochs": 150, "data.max_snippets": 0,
              "train.lr_schedule": "constant_cosine", "train.lr_constant_epochs": 15,
              "train.lr_cosine_epochs": 165, "train.lr_min": 5e-5})
