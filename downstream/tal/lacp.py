"""LACP: learning action completeness from points (Lee and Byun, "Learning Action Completeness
from Points for Weakly-supervised Temporal Action Localization", ICCV 2021).

Point-level supervision: each action instance of the training videos carries one annotated
timestamp (``VideoRecord.points``), mapped to its nearest snippet by the dataset.

* Model: a temporal conv embedding and a classifier over K + 1 classes (background last);
  sigmoid scores, action scores fused with the background one: p_c = sigma_c (1 - sigma_bg).
* Baseline losses: video-level BCE on top-k (k = T/8) pooled scores (mean over all snippets for
  absent classes, so they are pushed down everywhere), and focal-weighted point classification
  on the annotated points and on pseudo background points (in every gap between points: the
  snippets whose background score is >= ``background_threshold``, or the most background-like
  one when none is).
* Completeness: every ``search_every`` epochs from ``search_start_epoch`` the optimal sequence
  of each class of each training video is searched (:func:`optimal_sequence`) and stored;
  the score contrastive loss (1 - completeness R of that sequence under the current scores) and
  the feature contrastive loss (action segments attract each other, repel background segments,
  temperature ``tau``) learn from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, masked_mean, outer_inner_contrast, topk_mean
from downstream.task import Method


@dataclass(frozen=True)
class LacpConfig:
    hidden: int = 256  # embedding width (the paper: 2048 on I3D features)
    kernel_size: int = 3  # temporal kernel of the embedding conv
    dropout: float = 0.5  # dropout before the classifier (the paper: 0.7)
    topk_ratio: int = 8  # k = T // topk_ratio for the video score
    background_threshold: float = 0.95  # background score that makes a pseudo background point
    focal_gamma: float = 2.0  # exponent of the focal weight of the point losses
    oic_delta: float = 0.25  # outer flank / length in the outer-inner contrast
    tau: float = 0.1  # temperature of the feature contrastive loss
    search_start_epoch: int = 3  # first epoch that uses optimal sequences
    search_every: int = 2  # epochs between two searches
    weight_video: float = 1.0  # weight of the video classification loss
    weight_point: float = 1.0  # weight of the action point loss
    weight_background: float = 1.0  # weight of the pseudo background point loss
    weight_score: float = 1.0  # weight of the score contrastive loss
    weight_feature: float = 1.0  # weight of the feature contrastive loss


# ---------------------------------------------------------------------------------------------
# Pure functions


def point_focal_loss(probs: torch.Tensor, target: torch.Tensor, where: torch.Tensor,
                     gamma: float) -> torch.Tensor:
    """Focal-weighted BCE at the marked snippets, normalised by their count per video.

    ``probs``/``target`` ``(B, T, C)`` in [0, 1], ``where (B, T)`` bool; batch mean over videos
    (a video with no marked snippet adds 0).
    """
    eps = 1e-6
    probs = probs.clamp(eps, 1 - eps)
    bce = -(target * probs.log() + (1 - target) * (1 - probs).log())
    focal = (target * (1 - probs) + (1 - target) * probs) ** gamma
    weight = where.to(probs.dtype)
    per_video = ((focal * bce).sum(-1) * weight).sum(1) / weight.sum(1).clamp(min=1)
    return per_video.mean()


def pseudo_background(background: np.ndarray, points: Sequence[int],
                      threshold: float) -> np.ndarray:
    """``(T,)`` bool pseudo background points from background scores ``(T,)``.

    In each gap before, between and after the (sorted) annotated point snippets: the snippets
    with score >= ``threshold``, or, when none is, the single most background-like snippet.
    """
    out = np.zeros(len(background), dtype=bool)
    points = sorted({int(p) for p in points})
    if not points:
        return out
    edges = [-1, *points, len(background)]
    for left, right in itertools.pairwise(edges):
        if right - left <= 1:
            continue
        gap = np.arange(left + 1, right)
        sure = gap[background[gap] >= threshold]
        if len(sure):
            out[sure] = True
        else:
            out[gap[int(np.argmax(background[gap]))]] = True
    return out


def oic_table(scores: np.ndarray, starts: np.ndarray, end: int, delta: float) -> np.ndarray:
    """Outer-inner contrast of ``scores[s:end + 1]`` for every ``s`` in ``starts`` (vectorised
    form of :func:`downstream.tal.layers.outer_inner_contrast`)."""
    cum = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    length = end - starts + 1
    inner = (cum[end + 1] - cum[starts]) / length
    outer_s = np.maximum(0, np.trunc(starts - delta * length).astype(int))
    outer_e = np.minimum(len(scores) - 1, np.trunc(end + delta * length).astype(int))
    count = (starts - outer_s) + (outer_e - end)
    outer_sum = (cum[starts] - cum[outer_s]) + (cum[outer_e + 1] - cum[end + 1])
    outer = np.where(count > 0, outer_sum / np.maximum(count, 1), 0.0)
    return inner - outer


def optimal_sequence(scores: np.ndarray, points: Sequence[int], blocked: np.ndarray,
                     delta: float = 0.25) -> list[tuple[int, int]]:
    """Action instances ``[(start, end)]`` (inclusive snippets) of one class.

    ``scores (T,)`` action scores of the class, ``points`` its annotated snippets, ``blocked
    (T,)`` bool snippets that must be background (pseudo background points, points of other
    classes). Every instance holds its point(s) (adjacent points form one instance), contains
    no blocked snippet, and is separated from its neighbours by at least one background
    snippet. Within those limits each instance, left to right, takes the start and end that
    maximise its outer-inner contrast: the completeness score that LACP's search maximises,
    searched exactly per instance instead of with the paper's beam over whole sequences.
    """
    length = len(scores)
    groups: list[list[int]] = []
    for p in sorted({int(p) for p in points}):
        if groups and p == groups[-1][-1] + 1:
            groups[-1].append(p)
        else:
            groups.append([p])
    blocked = blocked.copy()
    blocked[[p for g in groups for p in g]] = False
    blocked_idx = np.flatnonzero(blocked)
    instances: list[tuple[int, int]] = []
    prev_end = -2
    for i, group in enumerate(groups):
        first, last = group[0], group[-1]
        before = blocked_idx[blocked_idx < first]
        after = blocked_idx[blocked_idx > last]
        lo = max(prev_end + 2, (before[-1] + 1) if len(before) else 0)
        hi = min((after[0] - 1) if len(after) else length - 1,
                 groups[i + 1][0] - 2 if i + 1 < len(groups) else length - 1)
        lo, hi = min(lo, first), max(hi, last)
        best = (-np.inf, first, last)
        starts = np.arange(lo, first + 1)
        for end in range(last, hi + 1):
            table = oic_table(scores, starts, end, delta)
            j = int(np.argmax(table))
            if table[j] > best[0]:
                best = (float(table[j]), int(starts[j]), end)
        instances.append((best[1], best[2]))
        prev_end = best[2]
    return instances


def runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """``[(value, start, end)]`` maximal runs of a 1-d 0/1 array (inclusive ends)."""
    out, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            out.append((int(labels[start]), start, t - 1))
            start = t
    return out


def completeness(action_scores: torch.Tensor, sequence: np.ndarray, delta: float) -> torch.Tensor:
    """R(pi): mean outer-inner contrast of the sequence's action runs (on the action scores)
    and background runs (on 1 - scores); ``action_scores (T,)``, ``sequence (T,)`` 0/1."""
    terms = [outer_inner_contrast(action_scores if value else 1 - action_scores, s, e, delta)
             for value, s, e in runs(sequence)]
    return torch.stack(terms).mean()


def feature_contrast(features: torch.Tensor, sequence: np.ndarray, tau: float) -> torch.Tensor | None:
    """Feature contrastive loss of one class of one video (supervised contrastive form).

    Segment features are the mean embedding over each run of ``sequence``; action segments
    (z = 1) are pulled towards each other and away from background segments. None when the
    sequence has fewer than two action segments.
    """
    segs = runs(sequence)
    z = torch.tensor([float(v) for v, _, _ in segs], device=features.device)
    if z.sum() < 2:
        return None
    feats = F.normalize(torch.stack([features[s:e + 1].mean(0) for _, s, e in segs]), dim=-1)
    sim = torch.exp(feats @ feats.T / tau)
    sim = sim * (1 - torch.eye(len(segs), device=features.device))
    ratio = (sim * z[None, :]).sum(1) / sim.sum(1)
    return -(z * torch.log(ratio.clamp(min=1e-12))).sum() / z.sum()


# ---------------------------------------------------------------------------------------------
# Model


class Lacp(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, hidden: int, kernel_size: int,
                 dropout: float, topk_ratio: int, background_threshold: float,
                 focal_gamma: float, oic_delta: float, tau: float, search_start_epoch: int,
                 search_every: int, weight_video: float, weight_point: float,
                 weight_background: float, weight_score: float, weight_feature: float):
        super().__init__()
        self.num_classes, self.topk_ratio = num_classes, topk_ratio
        self.background_threshold, self.focal_gamma = background_threshold, focal_gamma
        self.oic_delta, self.tau = oic_delta, tau
        self.search_start_epoch, self.search_every = search_start_epoch, search_every
        self.weights = (weight_video, weight_point, weight_background, weight_score,
                        weight_feature)
        self.embed = Embedding(feature_dim, hidden, kernel_size, dropout)
        self.classifier = nn.Linear(hidden, num_classes + 1)
        self.sequences: dict[str, np.ndarray] = {}  # video id -> (T, K) uint8 optimal sequences

    # Optimal sequences are training state: they travel in the checkpoint's state_dict.
    def get_extra_state(self) -> Any:
        return {k: v.tolist() for k, v in self.sequences.items()}

    def set_extra_state(self, state: Any) -> None:
        self.sequences = {k: np.asarray(v, dtype=np.uint8) for k, v in (state or {}).items()}

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.embed(features, mask)  # (B, T, H)
        sig = torch.sigmoid(self.classifier(x))  # (B, T, K + 1)
        action = sig[..., :-1] * (1 - sig[..., -1:])  # fused action scores
        probs = torch.cat([action, sig[..., -1:]], dim=-1)  # (B, T, K + 1)
        return {"x": x, "sigmoid": sig, "probs": probs}

    def video_scores(self, sig: torch.Tensor, mask: torch.Tensor,
                     labels: torch.Tensor | None) -> torch.Tensor:
        """``(B, K)``: top-k mean of the class sigmoids; mean over all snippets for absent
        classes during training (so that they are pushed down everywhere)."""
        top = topk_mean(sig[..., :-1], mask, self.topk_ratio)
        if labels is None:
            return top
        return top * labels + masked_mean(sig[..., :-1], mask) * (1 - labels)

    def start_epoch(self, epoch: int, train_batches: Callable[[], Iterable[dict[str, Any]]]) -> None:
        due = epoch - self.search_start_epoch
        if due < 0 or due % self.search_every:
            return
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for batch in train_batches():
                out = self(batch["features"], batch["mask"])
                for b, video_id in enumerate(batch["video_id"]):
                    length = int(batch["mask"][b].sum())
                    probs = out["probs"][b, :length].numpy()
                    points = batch["point_labels"][b, :length].numpy()
                    self.sequences[video_id] = self.search(probs, points,
                                                           batch["video_labels"][b].numpy())
        self.train(was_training)

    def search(self, probs: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(T, K)`` uint8 optimal sequences of the video's classes that have points."""
        point_idx = np.flatnonzero(points.max(1) > 0)
        background = pseudo_background(probs[:, -1], point_idx, self.background_threshold)
        out = np.zeros(points.shape, dtype=np.uint8)
        for c in np.flatnonzero(labels > 0):
            mine = np.flatnonzero(points[:, c] > 0)
            if not len(mine):
                continue
            blocked = background | (points.max(1) > 0)
            for s, e in optimal_sequence(probs[:, c], mine, blocked, self.oic_delta):
                out[s:e + 1, c] = 1
        return out

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        mask, labels, points = batch["mask"], batch["video_labels"], batch["point_labels"]
        out = self(batch["features"], mask)
        probs = out["probs"]
        video = self.video_scores(out["sigmoid"], mask, labels).clamp(1e-6, 1 - 1e-6)
        loss_video = F.binary_cross_entropy(video, labels)
        action_target = torch.cat([points, torch.zeros_like(points[..., :1])], dim=-1)
        at_points = (points.max(-1).values > 0) & mask
        loss_point = point_focal_loss(probs, action_target, at_points, self.focal_gamma)
        background = torch.zeros_like(at_points)
        for b in range(len(mask)):
            length = int(mask[b].sum())
            idx = np.flatnonzero(at_points[b, :length].numpy())
            bg = pseudo_background(probs[b, :length, -1].detach().numpy(), idx,
                                   self.background_threshold)
            background[b, :length] = torch.from_numpy(bg)
        bg_target = torch.zeros_like(action_target)
        bg_target[..., -1] = 1
        loss_bg = point_focal_loss(probs, bg_target, background, self.focal_gamma)
        loss_score, loss_feat = self._completeness_losses(batch, out)
        w = self.weights
        loss = (w[0] * loss_video + w[1] * loss_point + w[2] * loss_bg + w[3] * loss_score
                + w[4] * loss_feat)
        return loss, {"loss_video": loss_video.item(), "loss_point": loss_point.item(),
                      "loss_background": loss_bg.item(), "loss_score": loss_score.item(),
                      "loss_feature": loss_feat.item()}

    def _completeness_losses(self, batch: dict[str, Any],
                             out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and feature contrastive losses over the videos that have a searched sequence
        (the crop's part of it); 0 before the first search."""
        zero = out["probs"].sum() * 0
        score_terms, feat_terms = [], []
        for b, video_id in enumerate(batch["video_id"]):
            if video_id not in self.sequences:
                continue
            length = int(batch["mask"][b].sum())
            offset = batch["offset"][b]
            seq = self.sequences[video_id][offset:offset + length]
            if len(seq) != length:
                continue  # the stored sequence predates a change of the video; skip it
            classes = [c for c in np.flatnonzero(batch["video_labels"][b].numpy() > 0)
                       if seq[:, c].any()]
            if not classes:
                continue
            score_terms.append(torch.stack([
                1 - completeness(out["probs"][b, :length, c], seq[:, c], self.oic_delta)
                for c in classes]).mean())
            feats = [feature_contrast(out["x"][b, :length], seq[:, c], self.tau)
                     for c in classes]
            feats = [f for f in feats if f is not None]
            if feats:
                feat_terms.append(torch.stack(feats).mean())
        n = len(batch["video_id"])
        loss_score = torch.stack(score_terms).sum() / n if score_terms else zero
        loss_feat = torch.stack(feat_terms).sum() / n if feat_terms else zero
        return loss_score, loss_feat

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        return self.video_scores(out["sigmoid"], mask, None), out["probs"][..., :-1]


def build(*, feature_dim: int, num_classes: int, hidden: int = 256, kernel_size: int = 3,
          dropout: float = 0.5, topk_ratio: int = 8, background_threshold: float = 0.95,
          focal_gamma: float = 2.0, oic_delta: float = 0.25, tau: float = 0.1,
          search_start_epoch: int = 3, search_every: int = 2, weight_video: float = 1.0,
          weight_point: float = 1.0, weight_background: float = 1.0, weight_score: float = 1.0,
          weight_feature: float = 1.0) -> Lacp:
    return Lacp(feature_dim=feature_dim, num_classes=num_classes, hidden=hidden,
                kernel_size=kernel_size, dropout=dropout, topk_ratio=topk_ratio,
                background_threshold=background_threshold, focal_gamma=focal_gamma,
                oic_delta=oic_delta, tau=tau, search_start_epoch=search_start_epoch,
                search_every=search_every, weight_video=weight_video, weight_point=weight_point,
                weight_background=weight_background, weight_score=weight_score,
                weight_feature=weight_feature)


METHOD = Method(name="lacp", config=LacpConfig, build=build,
                summary="LACP, action completeness from points (Lee and Byun, ICCV 2021)", needs=("points",))
