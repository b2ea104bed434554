"""From activation sequences to scored segments: the post-processing of ASL, RSKP and LACP.

For each class whose video score passes ``class_threshold`` (the best class always passes),
the class activation sequence is thresholded at several values; each run of consecutive
snippets above a threshold is a proposal, scored by its outer-inner contrast plus
``gamma`` times the video score (LACP/BaS-Net's scoring). Overlapping proposals of a class are
then reduced by NMS or Gaussian soft-NMS. Times come from the store's clip-centre timestamps:
a run ``[s, e]`` covers ``timestamps[s] - step/2`` to ``timestamps[e] + step/2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from downstream.tal.layers import outer_inner_contrast


@dataclass(frozen=True)
class PostprocessConfig:
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # CAS cuts
    class_threshold: float = 0.1  # classes with a lower video score are not localized
    oic_delta: float = 0.25  # outer flank length / proposal length
    gamma: float = 0.2  # weight of the video score in the proposal score
    suppression: Literal["nms", "soft-nms", "none"] = "nms"  # duplicate removal
    nms_iou: float = 0.6  # NMS: drop proposals overlapping a better one by more than this
    soft_nms_sigma: float = 0.5  # soft-NMS: Gaussian decay exp(-iou^2 / sigma)
    min_score: float = 0.0  # soft-NMS: drop proposals whose decayed score falls below this
    max_per_video: int = 200  # keep at most this many segments per video (best first)


Detection = tuple[str, float, float, float]  # (label, score, start s, end s)


def proposals(cas: np.ndarray, score: float, thresholds: Sequence[float],
              delta: float, gamma: float) -> list[tuple[float, int, int]]:
    """``[(score, start, end)]`` runs of ``cas (T,)`` above each threshold (inclusive ends)."""
    out = []
    for threshold in thresholds:
        above = np.flatnonzero(cas > threshold)
        if not len(above):
            continue
        breaks = np.flatnonzero(np.diff(above) != 1)
        for run in np.split(above, breaks + 1):
            s, e = int(run[0]), int(run[-1])
            out.append((float(outer_inner_contrast(cas, s, e, delta)) + gamma * score, s, e))
    return out


def temporal_iou(segment: tuple[float, float], others: np.ndarray) -> np.ndarray:
    """IoU of one ``(start, end)`` with each row of ``others (N, 2)``."""
    inter = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]),
                    0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(segments: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS (best score first; ties keep input order); ``(N, 2)``."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        order = order[temporal_iou(tuple(segments[best]), segments[order]) <= iou]
    return np.asarray(keep, dtype=int)


def soft_nms(segments: np.ndarray, scores: np.ndarray, sigma: float,
             min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS (Bodla et al., ICCV 2017): (kept indices, their decayed scores)."""
    scores = scores.astype(np.float64).copy()
    remaining = list(range(len(scores)))
    keep, kept_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: (scores[i], -i))
        remaining.remove(best)
        if scores[best] < min_score:
            break
        keep.append(best)
        kept_scores.append(scores[best])
        if remaining:
            rest = np.asarray(remaining)
            overlap = temporal_iou(tuple(segments[best]), segments[rest])
            scores[rest] *= np.exp(-(overlap**2) / sigma)
    return np.asarray(keep, dtype=int), np.asarray(kept_scores)


def detect(video_scores: np.ndarray, cas: np.ndarray, timestamps: np.ndarray,
           classes: Sequence[str], config: PostprocessConfig) -> list[Detection]:
    """Segments of one video from ``video_scores (K,)``, ``cas (T, K)`` and ``timestamps (T,)``."""
    step = float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 1.0
    wanted = set(np.flatnonzero(video_scores >= config.class_threshold).tolist())
    wanted.add(int(np.argmax(video_scores)))
    found: list[Detection] = []
    for c in sorted(wanted):
        props = proposals(cas[:, c], float(video_scores[c]), config.thresholds,
                          config.oic_delta, config.gamma)
        if not props:
            continue
        scores = np.array([p[0] for p in props])
        segments = np.array([(timestamps[s] - step / 2, timestamps[e] + step / 2)
                             for _, s, e in props])
        segments = np.clip(segments, 0.0, None)
        if config.suppression == "nms":
            keep = nms(segments, scores, config.nms_iou)
            kept = scores[keep]
        elif config.suppression == "soft-nms":
            keep, kept = soft_nms(segments, scores, config.soft_nms_sigma, config.min_score)
        else:
            keep, kept = np.arange(len(scores)), scores
        found += [(classes[c], float(score), float(segments[i, 0]), float(segments[i, 1]))
                  for i, score in zip(keep, kept)]
    found.sort(key=lambda d: -d[1])
    return found[: config.max_per_video]
