"""From activation sequences to scored segments: the post-processing of ASL, RSKP and LACP.

For each class whose video score passes ``class_threshold`` (the best class always passes),
the class activation sequence, optionally upsampled ``upsample`` times by linear interpolation,
is thresholded at several values; each run of consecutive points above a threshold is a
proposal, scored by its outer-inner contrast plus ``gamma`` times the video score
(BaS-Net's scoring, which the three official codes share). Overlapping proposals of a class are
then reduced by NMS, Gaussian soft-NMS or BaS-Net's decayed NMS. Times come from the store's
clip-centre timestamps: snippet ``i`` covers ``timestamps[i] - step/2`` to
``timestamps[i] + step/2``, and the ``upsample`` points of a snippet split it evenly.

The class defaults are the shared post-processing (one setting for every method, at the native
grid: ``downstream/tal/shared_post.yaml`` restores it for any method); each method's defaults
(its ``Method.defaults``) are what its official code runs on THUMOS'14.
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
    # Cuts of the method's class-agnostic actionness (ASL, LACP): its runs are proposals of
    # every localized class, scored on that class's sequence (LACP's second proposal set).
    actionness_thresholds: tuple[float, ...] = ()
    class_threshold: float = 0.1  # classes with a lower video score are not localized
    always_best_class: bool = True  # localize the best class even below class_threshold
    min_length: int = 1  # shorter runs (points after upsampling) are no proposals
    upsample: int = 1  # points per snippet, linearly interpolated, before thresholding
    oic_delta: float = 0.25  # outer flank length / proposal length
    gamma: float = 0.2  # weight of the video score in the proposal score
    # Duplicate removal: "nms" (greedy), "soft-nms" (Gaussian, Bodla et al.), "decayed-nms"
    # (BaS-Net's soft_nms that the official codes call: greedy NMS at nms_iou, and every
    # proposal it removes comes back with its score times exp(-iou^2 / soft_nms_sigma)), "none".
    suppression: Literal["nms", "soft-nms", "decayed-nms", "none"] = "nms"
    nms_iou: float = 0.6  # NMS: drop proposals overlapping a better one by more than this
    # What NMS's overlap is: "iou", or "candidate" (RSKP's: the intersection over the length of
    # the proposal that may be dropped)
    nms_overlap: Literal["iou", "candidate"] = "iou"
    soft_nms_sigma: float = 0.5  # soft-NMS and decayed-NMS: decay exp(-iou^2 / sigma)
    min_score: float = 0.0  # soft-NMS: drop proposals whose decayed score falls below this
    # Seconds added to each length in the suppression IoU (the official codes keep the "+ 1"
    # of pixel boxes on segments in seconds: 1.0).
    iou_length_offset: float = 0.0
    max_per_video: int = 200  # keep at most this many segments per video, best first (0: all)

    def __post_init__(self) -> None:
        for key, low in (("upsample", 1), ("min_length", 1), ("max_per_video", 0),
                         ("iou_length_offset", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"post.{key}={getattr(self, key)} must be >= {low}")
        if self.soft_nms_sigma <= 0:
            raise ValueError(f"post.soft_nms_sigma={self.soft_nms_sigma} must be > 0")


Detection = tuple[str, float, float, float]  # (label, score, start s, end s)


def proposals(cas: np.ndarray, score: float, thresholds: Sequence[float],
              delta: float, gamma: float, cut: np.ndarray | None = None,
              min_length: int = 1) -> list[tuple[float, int, int]]:
    """``[(score, start, end)]`` runs of ``cut (T,)`` (default: ``cas``) above each threshold
    (inclusive ends, at least ``min_length`` long), scored on ``cas (T,)``."""
    out = []
    cut = cas if cut is None else cut
    for threshold in thresholds:
        above = np.flatnonzero(cut > threshold)
        if not len(above):
            continue
        breaks = np.flatnonzero(np.diff(above) != 1)
        for run in np.split(above, breaks + 1):
            s, e = int(run[0]), int(run[-1])
            if e - s + 1 < min_length:
                continue
            out.append((float(outer_inner_contrast(cas, s, e, delta)) + gamma * score, s, e))
    return out


def temporal_iou(segment: tuple[float, float], others: np.ndarray,
                 length_offset: float = 0.0, over: str = "iou") -> np.ndarray:
    """IoU of one ``(start, end)`` with each row of ``others (N, 2)``; ``length_offset`` is
    added to every length and overlap (the official codes' "+ 1"); ``over="candidate"``
    divides the intersection by each row's own length instead of the union."""
    inter = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0])
                    + length_offset, 0, None)
    own = others[:, 1] - others[:, 0] + length_offset
    union = own if over == "candidate" else (segment[1] - segment[0] + length_offset) + own - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(segments: np.ndarray, scores: np.ndarray, iou: float, length_offset: float = 0.0,
        over: str = "iou") -> np.ndarray:
    """Indices kept by greedy NMS (best score first; ties keep input order); ``(N, 2)``.
    With ``length_offset`` (the official BaS-Net-style code) an overlap equal to ``iou`` is
    dropped; otherwise kept."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        overlap = temporal_iou(tuple(segments[best]), segments[order], length_offset, over)
        order = order[overlap < iou if length_offset else overlap <= iou]
    return np.asarray(keep, dtype=int)


def decayed_nms(segments: np.ndarray, scores: np.ndarray, iou: float, sigma: float,
                length_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """BaS-Net's ``soft_nms``: greedy NMS keeps proposals overlapping every better kept one by
    less than ``iou``; each proposal removed comes back, after all the kept ones, with its score
    times ``exp(-overlap^2 / sigma)`` (overlap with the proposal that removed it)."""
    order = np.argsort(-scores, kind="stable")
    keep, removed, decayed = [], [], []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        overlap = temporal_iou(tuple(segments[best]), segments[order], length_offset)
        gone = overlap >= iou
        removed += order[gone].tolist()
        decayed += (scores[order[gone]] * np.exp(-overlap[gone] ** 2 / sigma)).tolist()
        order = order[~gone]
    return (np.asarray(keep + removed, dtype=int),
            np.concatenate([scores[keep], np.asarray(decayed, dtype=float)]))


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
           classes: Sequence[str], config: PostprocessConfig,
           actionness: np.ndarray | None = None) -> list[Detection]:
    """Segments of one video from ``video_scores (K,)``, ``cas (T, K)``, ``timestamps (T,)``
    and, for ``post.actionness_thresholds``, the method's ``actionness (T,)``."""
    if config.actionness_thresholds and actionness is None:
        raise ValueError("post.actionness_thresholds needs a method with an actionness "
                         "sequence (asl, lacp)")
    step = float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 1.0
    # Edges of the points: snippet i spans [t_i - step/2, t_i + step/2], split into upsample parts
    scale = config.upsample
    edges = np.append(timestamps - step / 2, timestamps[-1] + step / 2)
    edges = np.interp(np.arange(len(timestamps) * scale + 1) / scale,
                      np.arange(len(edges)), edges)
    cas = upsample(cas, scale)
    if config.actionness_thresholds:
        actionness = upsample(actionness[:, None], scale)[:, 0]
    wanted = set(np.flatnonzero(video_scores >= config.class_threshold).tolist())
    if config.always_best_class:
        wanted.add(int(np.argmax(video_scores)))
    found: list[Detection] = []
    for c in sorted(wanted):
        props = proposals(cas[:, c], float(video_scores[c]), config.thresholds,
                          config.oic_delta, config.gamma, min_length=config.min_length)
        if config.actionness_thresholds:
            props += proposals(cas[:, c], float(video_scores[c]), config.actionness_thresholds,
                               config.oic_delta, config.gamma, cut=actionness,
                               min_length=config.min_length)
        if not props:
            continue
        scores = np.array([p[0] for p in props])
        segments = np.array([(edges[s], edges[e + 1]) for _, s, e in props])
        segments = np.clip(segments, 0.0, None)
        if config.suppression == "nms":
            keep = nms(segments, scores, config.nms_iou, config.iou_length_offset,
                       config.nms_overlap)
            kept = scores[keep]
        elif config.suppression == "decayed-nms":
            keep, kept = decayed_nms(segments, scores, config.nms_iou, config.soft_nms_sigma,
                                     config.iou_length_offset)
        elif config.suppression == "soft-nms":
            keep, kept = soft_nms(segments, scores, config.soft_nms_sigma, config.min_score)
        else:
            keep, kept = np.arange(len(scores)), scores
        found += [(classes[c], float(score), float(segments[i, 0]), float(segments[i, 1]))
                  for i, score in zip(keep, kept)]
    found.sort(key=lambda d: -d[1])
    return found[: config.max_per_video] if config.max_per_video else found


def upsample(cas: np.ndarray, scale: int) -> np.ndarray:
    """``(T * scale, K)``: ``cas (T, K)`` linearly interpolated at ``i / scale``, the points past
    the last snippet extrapolated from the last two (scipy's ``interp1d(..., "extrapolate")``,
    as the official codes do)."""
    if scale == 1 or len(cas) < 2:
        return np.repeat(cas, scale, axis=0)
    x = np.arange(len(cas) * scale) / scale
    left = np.minimum(np.floor(x).astype(int), len(cas) - 2)
    frac = (x - left)[:, None]
    return cas[left] * (1 - frac) + cas[left + 1] * frac
