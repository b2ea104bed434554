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

The defaults are those of the official code (Pilhyeon/Learning-Action-Completeness-from-Points:
model.py, train.py, utils.py, options.py, config.py, test.py): a 2048-wide kernel-3 embedding,
dropout 0.7 before a bias-free classifier, the feature loss on the embedding before dropout,
the action point loss at weight 0.5, pseudo background filled into spans (:func:`
pseudo_background`), the score loss (mean 1 - OIC of the action runs + that of the background
runs, pooled over the video's classes) squared, the feature loss on segment features that
average one random snippet of each third of a segment, from the last class that has two action
segments; Adam at 1e-4 with weight decay 5e-4, whole videos, 16 per step, 160 epochs (2,000
iterations of 16 of THUMOS'14's 200 videos), the search before every epoch from the second;
post-processing: class threshold 0.5, the sequence upsampled 24x, CAS thresholds 0 to 0.225 in
steps of 0.025 and actionness (1 - background) thresholds 0.5 to 0.7, hard NMS at 0.7 (lengths
+ 1 s); the search is the official beam search over whole sequences (:mod:`downstream.tal.
lacp_search`), the exact per-instance search of :func:`optimal_sequence` an option.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.lacp_search import beam_sequence, pseudo_action_points, transcript_and_ranges
from downstream.tal.layers import Embedding, masked_mean, outer_inner_contrast, topk_mean
from downstream.task import Method


@dataclass(frozen=True)
class LacpConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "feature_samples", "hidden", "kernel_size", "search_budget", "search_every",
        "topk_ratio"})
    hidden: int = 2048  # embedding width (official: 2048)
    kernel_size: int = 3  # temporal kernel of the embedding conv (official: 3)
    dropout: float = 0.7  # dropout before the classifier (official: 0.7)
    classifier_bias: bool = False  # the official 1x1 classifier conv has no bias
    topk_ratio: int = 8  # k = T // topk_ratio for the video score
    background_threshold: float = 0.95  # background score that makes a pseudo background point
    focal_gamma: float = 2.0  # exponent of the focal weight of the point losses
    oic_delta: float = 0.25  # outer flank / length in the outer-inner contrast
    tau: float = 0.1  # temperature of the feature contrastive loss
    # The search runs before epoch search_start_epoch (0-based) and every search_every epochs
    # after (official: every 10 iterations of 16 videos from the 10th, ~0.8 of a THUMOS epoch).
    search_start_epoch: int = 1
    search_every: int = 1
    weight_video: float = 1.0  # weight of the video classification loss
    weight_point: float = 0.5  # weight of the action point loss (official lambdas[1]: 0.5)
    weight_background: float = 1.0  # weight of the pseudo background point loss
    weight_score: float = 1.0  # weight of the score contrastive loss
    weight_feature: float = 1.0  # weight of the feature contrastive loss
    # Snippets averaged into a segment's feature, one drawn at random from each equal part of the
    # segment (official: 3); 0 averages the whole segment.
    feature_samples: int = 3
    # Classes the feature loss reads: "last" (the official code keeps only the last class with
    # two action segments; its loop overwrites the others) or "mean" (the paper's average).
    feature_classes: Literal["last", "mean"] = "last"
    score_loss: Literal["official", "paper"] = "official"  # see completeness_loss
    # The optimal sequence search: "beam" (the official code's, lacp_search.py: whole sequences
    # seeded also by pseudo action points, budget and pruning below) or "exact" (each instance
    # maximises its own outer-inner contrast, optimal_sequence).
    search: Literal["beam", "exact"] = "beam"
    search_budget: int = 25  # beam: hypotheses kept after each snippet
    search_prune: float = 0.1  # beam: hypotheses whose running contrast falls below are dropped
    action_seed_threshold: float = 0.1  # beam: pseudo action points need background <= this

    def __post_init__(self) -> None:
        if self.search_budget < 1 or self.feature_samples < 0 or self.search_every < 1:
            raise ValueError(f"lacp.search_budget={self.search_budget} and lacp.search_every="
                             f"{self.search_every} must be >= 1, lacp.feature_samples="
                             f"{self.feature_samples} >= 0")


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
    """``(T,)`` bool pseudo background points from background scores ``(T,)``, filled as the
    official ``select_seed`` fills them around the (sorted) annotated point snippets.

    Before the first point: every snippet from 0 to the last one scoring >= ``threshold``, or
    to the most background-like one when none does; after the last point, likewise from the
    first sure one (or the most background-like) to the end; between two points (not
    adjacent): the span from the first to the last sure snippet when at least two are sure,
    else the single most background-like snippet.
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
        best = int(gap[int(np.argmax(background[gap]))])
        if left == -1:  # before the first point: from the video's start
            out[: (sure[-1] if len(sure) else best) + 1] = True
        elif right == len(background):  # after the last point: to the video's end
            out[sure[0] if len(sure) else best:] = True
        elif len(sure) >= 2:
            out[sure[0]:sure[-1] + 1] = True
        else:
            out[best] = True
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


def completeness_loss(action_scores: torch.Tensor, sequences: np.ndarray, classes: Sequence[int],
                      delta: float, form: str = "official") -> torch.Tensor:
    """Score contrastive loss of one video: ``action_scores (T, K)``, ``sequences (T, K)`` 0/1.

    "official" (train.py of the official code): the mean of 1 - OIC over the action runs of all
    ``classes`` plus the mean of 1 - OIC of (1 - scores) over their background runs, squared;
    "paper": the mean over the classes of 1 - R (:func:`completeness`).
    """
    if form == "paper":
        return torch.stack([1 - completeness(action_scores[:, c], sequences[:, c], delta)
                            for c in classes]).mean()
    action, background = [], []
    for c in classes:
        for value, s, e in runs(sequences[:, c]):
            scores = action_scores[:, c] if value else 1 - action_scores[:, c]
            (action if value else background).append(
                1 - outer_inner_contrast(scores, s, e, delta))
    total = sum(torch.stack(part).mean() for part in (action, background) if part)
    return total**2


def feature_contrast(features: torch.Tensor, sequence: np.ndarray, tau: float,
                     samples: int = 0, rng: np.random.Generator | None = None
                     ) -> torch.Tensor | None:
    """Feature contrastive loss of one class of one video (supervised contrastive form).

    Segment features average each run of ``sequence`` (with ``samples`` > 0: one random snippet
    of each of ``samples`` equal parts of the run, as the official ``feature_sampling``);
    action segments (z = 1) are pulled towards each other and away from background segments.
    None when the sequence has fewer than two action segments.
    """
    segs = runs(sequence)
    z = torch.tensor([float(v) for v, _, _ in segs], device=features.device)
    if z.sum() < 2:
        return None
    feats = F.normalize(torch.stack([segment_feature(features, s, e, samples, rng)
                                     for _, s, e in segs]), dim=-1)
    sim = torch.exp(feats @ feats.T / tau)
    sim = sim * (1 - torch.eye(len(segs), device=features.device))
    ratio = (sim * z[None, :]).sum(1) / sim.sum(1)
    return -(z * torch.log(ratio.clamp(min=1e-12))).sum() / z.sum()


def segment_feature(features: torch.Tensor, start: int, end: int, samples: int,
                    rng: np.random.Generator | None) -> torch.Tensor:
    """Mean feature of ``features[start:end + 1]``, or of one random snippet per equal part."""
    if not samples or rng is None:
        return features[start:end + 1].mean(0)
    bounds = np.linspace(start, end + 1, samples + 1)
    lows = np.floor(bounds[:-1]).astype(int)
    highs = np.maximum(lows + 1, np.floor(bounds[1:]).astype(int))
    return features[torch.as_tensor(rng.integers(lows, highs))].mean(0)


# ---------------------------------------------------------------------------------------------
# Model


class Lacp(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, **options: Any):
        super().__init__()
        cfg = LacpConfig(**options)  # options over the official defaults, checked there
        self.num_classes, self.topk_ratio = num_classes, cfg.topk_ratio
        self.background_threshold, self.focal_gamma = cfg.background_threshold, cfg.focal_gamma
        self.oic_delta, self.tau = cfg.oic_delta, cfg.tau
        self.search_start_epoch, self.search_every = cfg.search_start_epoch, cfg.search_every
        self.weights = (cfg.weight_video, cfg.weight_point, cfg.weight_background,
                        cfg.weight_score, cfg.weight_feature)
        self.feature_samples, self.feature_classes = cfg.feature_samples, cfg.feature_classes
        self.score_loss = cfg.score_loss
        self.search_mode, self.search_budget = cfg.search, cfg.search_budget
        self.search_prune, self.action_seed_threshold = cfg.search_prune, cfg.action_seed_threshold
        self.embed = Embedding(feature_dim, cfg.hidden, cfg.kernel_size, 0.0)
        self.dropout = nn.Dropout(cfg.dropout)  # after the embedding the feature loss reads
        self.classifier = nn.Linear(cfg.hidden, num_classes + 1, bias=cfg.classifier_bias)
        self.sampler = np.random.default_rng(0)  # the feature loss's snippet draws
        self.sequences: dict[str, np.ndarray] = {}  # video id -> (T, K) uint8 optimal sequences

    # Optimal sequences and the feature loss's snippet draws are training state: they travel in
    # the checkpoint's state_dict (resume is bit-identical).
    def get_extra_state(self) -> Any:
        return {"sequences": {k: v.tolist() for k, v in self.sequences.items()},
                "sampler": self.sampler.bit_generator.state}

    def set_extra_state(self, state: Any) -> None:
        state = state or {}
        if "sampler" in state:
            self.sampler.bit_generator.state = state["sampler"]
        sequences = state.get("sequences", {} if "sampler" in state else state)
        self.sequences = {k: np.asarray(v, dtype=np.uint8) for k, v in sequences.items()}

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.embed(features, mask)  # (B, T, H), before dropout
        sig = torch.sigmoid(self.classifier(self.dropout(x)))  # (B, T, K + 1)
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
        seeds = (pseudo_action_points(points, probs[:, -1], background,
                                      self.action_seed_threshold)
                 if self.search_mode == "beam" else points)
        for c in np.flatnonzero(labels > 0):
            mine = np.flatnonzero(points[:, c] > 0)
            if not len(mine):
                continue
            plan = None
            if self.search_mode == "beam":
                action = seeds[:, c] > 0
                plan = transcript_and_ranges(action, background | ((seeds.max(1) > 0) & ~action))
            if plan is not None:
                out[:, c] = beam_sequence(probs[:, c], *plan, budget=self.search_budget,
                                          prune=self.search_prune, delta=self.oic_delta)
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
            score_terms.append(completeness_loss(out["probs"][b, :length], seq, classes,
                                                 self.oic_delta, self.score_loss))
            feats = [feature_contrast(out["x"][b, :length], seq[:, c], self.tau,
                                      self.feature_samples, self.sampler) for c in classes]
            feats = [f for f in feats if f is not None]
            if feats:
                feat_terms.append(feats[-1] if self.feature_classes == "last"
                                  else torch.stack(feats).mean())
        n = len(batch["video_id"])
        loss_score = torch.stack(score_terms).sum() / n if score_terms else zero
        loss_feat = torch.stack(feat_terms).sum() / n if feat_terms else zero
        return loss_score, loss_feat

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        return (self.video_scores(out["sigmoid"], mask, None), out["probs"][..., :-1],
                1 - out["sigmoid"][..., -1])


def build(*, feature_dim: int, num_classes: int, **options: Any) -> Lacp:
    """The model with ``options`` over :class:`LacpConfig`'s defaults."""
    return Lacp(feature_dim=feature_dim, num_classes=num_classes, **options)


# Pilhyeon/Learning-Action-Completeness-from-Points: options.py, main.py, config.py, test.py
OFFICIAL_POST = {"post.thresholds": tuple(round(0.025 * i, 3) for i in range(10)),
                 "post.actionness_thresholds": tuple(round(0.5 + 0.025 * i, 3) for i in range(9)),
                 "post.class_threshold": 0.5, "post.upsample": 24, "post.oic_delta": 0.25,
                 "post.gamma": 0.2, "post.suppression": "nms", "post.nms_iou": 0.7,
                 "post.iou_length_offset": 1.0, "post.max_per_video": 0}

METHOD = Method(name="lacp", config=LacpConfig, build=build,
                summary="LACP, action completeness from points (Lee and Byun, ICCV 2021)", needs=("points",),
                defaults={"train.lr": 1e-4, "train.weight_decay": 5e-4, "train.batch_size": 16,
                          "train.epochs": 160, "data.max_snippets": 0, **OFFICIAL_POST})
