"""Temporal action detection mAP with the semantics of ActivityNet ``Evaluation/eval_detection.py``.

For each class of the ground truth and each tIoU threshold:

1. the class's predictions are pooled over all videos and sorted by descending score;
2. each prediction, in that order, goes through the GT instances of its video by descending tIoU
   and takes the first one that is not matched yet, provided its tIoU >= threshold; otherwise it
   is a false positive (so is a prediction in a video without GT of that class);
3. AP is the all-point interpolated AP (VOC 2011 style: precision made monotone from the right,
   summed over the recall steps) with ``recall = tp / number of GT instances``.

A GT class without predictions has AP 0 and counts in the mean; ``mAP`` is the mean over GT
classes per threshold, ``average_mAP`` the mean of ``mAP`` over thresholds.

Replicated from the official code, including its less obvious cases:

* among GT instances with *equal* tIoU the later one (in GT order) is tried first: that is what
  the official ``argsort()[::-1]`` gives for the short per-video arrays it sorts (numpy's
  stable small-array sort, reversed).
* predictions for videos absent from the (subset of the) ground truth are false positives,
  exactly like the official code (its "no GT of this class in this video" branch); a warning
  names them.

Deliberate differences from the official code (documented, and tested):

* predictions are sorted with a *stable* sort, so among equal scores the earlier prediction (in
  input order: videos in file order, then the order within the video) is ranked first. The
  official ``argsort()[::-1]`` reverses ties for short arrays and leaves them unspecified for
  long ones, so its AP with tied scores is not reproducible anyway.
* predictions whose label is not a GT class are ignored with a warning (the official code
  raises ``KeyError``).
* ``--subset`` is compared case-insensitively ("Test" == "test"); the official compares
  exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from downstream.metrics.errors import MetricInputError, number, read_json, require

log = logging.getLogger(__name__)

TIOU_PRESETS: dict[str, tuple[float, ...]] = {
    # THUMOS14 papers report mAP@0.1:0.7 (and its mean); ActivityNet reports 0.5:0.95.
    "thumos14": tuple(round(0.1 * i, 2) for i in range(1, 8)),
    "activitynet": tuple(round(0.5 + 0.05 * i, 2) for i in range(10)),
}


def segment_iou(segment: Sequence[float], candidates: np.ndarray) -> np.ndarray:
    """tIoU of one ``(start, end)`` segment with ``(M, 2)`` candidates (seconds) -> ``(M,)``."""
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    start, end = float(segment[0]), float(segment[1])
    inter = (np.minimum(end, candidates[:, 1]) - np.maximum(start, candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (end - start) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP from cumulative ``(P,)`` precision and recall (VOC 2011)."""
    prec = np.concatenate([[0.0], precision, [0.0]])
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]  # monotone envelope from the right
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def average_precision_detection(ground_truth: Mapping[str, np.ndarray],
                                predictions: Sequence[tuple[str, float, float, float]],
                                tiou_thresholds: Sequence[float]) -> np.ndarray:
    """AP per threshold of one class.

    ``ground_truth``: video -> ``(G, 2)`` segments (seconds) of this class;
    ``predictions``: ``(video, score, start, end)`` of this class, in input order.
    Returns ``(len(tiou_thresholds),)`` APs in [0, 1]; zeros without predictions.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    ap = np.zeros(len(thresholds))
    npos = sum(len(segs) for segs in ground_truth.values())
    if not predictions or npos == 0:
        return ap
    scores = np.array([p[1] for p in predictions], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros((len(thresholds), len(order)))
    fp = np.zeros((len(thresholds), len(order)))
    matched = {video: np.zeros((len(thresholds), len(segs)), dtype=bool)
               for video, segs in ground_truth.items()}
    for rank, i in enumerate(order):
        video, _, start, end = predictions[i]
        gts = ground_truth.get(video)
        if gts is None or len(gts) == 0:
            fp[:, rank] = 1
            continue
        ious = segment_iou((start, end), gts)
        by_iou = np.argsort(ious, kind="stable")[::-1]
        for t, threshold in enumerate(thresholds):
            for j in by_iou:
                if ious[j] < threshold:
                    break
                if matched[video][t, j]:
                    continue
                matched[video][t, j] = True
                tp[t, rank] = 1
                break
            fp[t, rank] = 1 - tp[t, rank]
    tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall = tp_cum / npos
    precision = tp_cum / (tp_cum + fp_cum)
    for t in range(len(thresholds)):
        ap[t] = interpolated_ap(precision[t], recall[t])
    return ap


def evaluate_detection(ground_truth: Mapping[str, Sequence[tuple[str, float, float]]],
                       predictions: Mapping[str, Sequence[tuple[str, float, float, float]]],
                       tiou_thresholds: Sequence[float],
                       classes: Sequence[str] | None = None) -> dict:
    """ActivityNet detection mAP.

    ``ground_truth``: video -> ``(label, start, end)`` (seconds); a video with an empty list
    belongs to the evaluated set but has no instance. ``predictions``: video ->
    ``(label, score, start, end)``. ``classes`` (default: GT labels in order of first
    appearance) are the classes averaged, in that order; a listed class without GT instances
    is skipped with a warning (no AP is defined for it).
    Returns ``{"tiou", "mAP", "average_mAP", "ap_per_class": {class: [ap per tiou]}}``.
    """
    thresholds = [float(t) for t in tiou_thresholds]
    if not thresholds:
        raise MetricInputError("no tIoU threshold given")
    gt_by_class: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for video, items in ground_truth.items():
        for label, start, end in items:
            gt_by_class.setdefault(label, {}).setdefault(video, []).append((start, end))
    if classes is None:
        classes = list(gt_by_class)
    without_gt = [c for c in classes if c not in gt_by_class]
    if without_gt:
        # The official classes come from the GT: a class without instances is not evaluated.
        log.warning("classes without ground-truth instances are not evaluated: %s",
                    _preview(without_gt))
        classes = [c for c in classes if c in gt_by_class]
    if not classes:
        raise MetricInputError("the ground truth has no instance: nothing to evaluate")
    wanted = set(classes)

    pred_by_class: dict[str, list[tuple[str, float, float, float]]] = {c: [] for c in classes}
    unknown_classes: dict[str, int] = {}
    for video, items in predictions.items():
        for label, score, start, end in items:
            if label in wanted:
                pred_by_class[label].append((video, score, start, end))
            else:
                unknown_classes[label] = unknown_classes.get(label, 0) + 1
    if unknown_classes:
        log.warning("ignored predictions of classes absent from the ground truth: %s",
                    ", ".join(f"{c!r} ({n})" for c, n in sorted(unknown_classes.items())))
    unknown_videos = sorted(set(predictions) - set(ground_truth))
    if unknown_videos:
        log.warning("%d predicted videos are not in the ground truth; their predictions count "
                    "as false positives (as in eval_detection.py): %s",
                    len(unknown_videos), _preview(unknown_videos))
    no_predictions = [c for c in classes if not pred_by_class[c]]
    if no_predictions:
        log.warning("classes without predictions (AP 0): %s", _preview(no_predictions))

    ap = {}
    for name in classes:
        gts = {video: np.asarray(segs, dtype=np.float64)
               for video, segs in gt_by_class[name].items()}
        ap[name] = average_precision_detection(gts, pred_by_class[name], thresholds)
    table = np.stack([ap[name] for name in classes])  # (K, len(thresholds))
    mean_ap = table.mean(axis=0)
    return {
        "tiou": thresholds,
        "mAP": [float(x) for x in mean_ap],
        "average_mAP": float(mean_ap.mean()),
        "ap_per_class": {name: [float(x) for x in ap[name]] for name in classes},
    }


def parse_tiou(value: str | Sequence[float]) -> tuple[float, ...]:
    """``"thumos14"``, ``"activitynet"`` or a comma list ``"0.3,0.5,0.7"`` -> thresholds."""
    if not isinstance(value, str):
        out = tuple(float(v) for v in value)
    elif value.lower() in TIOU_PRESETS:
        out = TIOU_PRESETS[value.lower()]
    else:
        try:
            out = tuple(float(v) for v in value.split(",") if v.strip())
        except ValueError as exc:
            raise MetricInputError(f"--tiou {value!r}: expected {sorted(TIOU_PRESETS)} or a comma "
                             f"list of numbers") from exc
    bad = [t for t in out if not 0.0 < t <= 1.0 or math.isnan(t)]
    if not out or bad:
        raise MetricInputError(f"--tiou {value!r}: thresholds must lie in (0, 1], got {list(out)}")
    return out


# ---------------------------------------------------------------------------------------------
# Loaders


def load_detection_ground_truth(path: str | Path, subset: str | None = None
                                ) -> dict[str, list[tuple[str, float, float]]]:
    """Video -> ``(label, start, end)`` from a manifest folder or an ActivityNet-style JSON.

    ``subset`` keeps the videos of one split (manifest) or ``"subset"`` (JSON); compared
    case-insensitively ("test" == "Test"; only case is folded, "testing" is another subset).
    Every kept video is in the result, also one without instances.
    """
    path = Path(path)
    if path.is_dir() or path.name in ("meta.json", "videos.jsonl"):
        return _ground_truth_from_manifest(path, subset)
    data = read_json(path)
    database = require(data, "database", path, "the top level")
    if not isinstance(database, dict):
        raise MetricInputError(f"{path}: 'database' must map video ids to records")
    out: dict[str, list[tuple[str, float, float]]] = {}
    for video, record in database.items():
        if not isinstance(record, dict):
            raise MetricInputError(f"{path}: video {video!r}: record must be an object")
        if subset is not None:
            record_subset = str(require(record, "subset", path, f"video {video!r}"))
            if record_subset.lower() != subset.lower():
                continue
        items = []
        for i, ann in enumerate(require(record, "annotations", path, f"video {video!r}")):
            where = f"video {video!r} annotation {i}"
            label = require(ann, "label", path, where)
            start, end = _segment(require(ann, "segment", path, where), path, where)
            items.append((str(label), start, end))
        out[video] = items
    if subset is not None and not out:
        have = sorted({str(r.get("subset")) for r in database.values() if isinstance(r, dict)})
        raise MetricInputError(f"{path}: no video in subset {subset!r}; subsets present: {have}")
    return out


def load_detection_predictions(path: str | Path) -> dict[str, list[tuple[str, float, float, float]]]:
    """Video -> ``(label, score, start, end)`` from ``{"results": {video: [...]}}``."""
    path = Path(path)
    data = read_json(path)
    results = require(data, "results", path, "the top level")
    if not isinstance(results, dict):
        raise MetricInputError(f"{path}: 'results' must map video ids to lists of detections")
    out: dict[str, list[tuple[str, float, float, float]]] = {}
    for video, items in results.items():
        if not isinstance(items, list):
            raise MetricInputError(f"{path}: video {video!r}: expected a list of detections")
        rows = []
        for i, det in enumerate(items):
            where = f"video {video!r} detection {i}"
            label = require(det, "label", path, where)
            score = number(require(det, "score", path, where), path, where, "score")
            start, end = _segment(require(det, "segment", path, where), path, where)
            rows.append((str(label), score, start, end))
        out[video] = rows
    return out


def evaluate_files(ground_truth: str | Path, predictions: str | Path, *,
                   subset: str | None = None, tiou: str | Sequence[float] = "thumos14") -> dict:
    """:func:`evaluate_detection` on files: GT manifest folder or ActivityNet-style JSON,
    predictions ``{"results": ...}``; ``tiou`` a preset name or a comma list."""
    thresholds = parse_tiou(tiou)
    gt = load_detection_ground_truth(ground_truth, subset)
    predicted = load_detection_predictions(predictions)
    if not any(predicted.values()):
        log.warning("%s: no detection at all; every class gets AP 0", predictions)
    result = evaluate_detection(gt, predicted, thresholds)
    return {**result, "num_videos": len(gt)}


def _ground_truth_from_manifest(path: Path, subset: str | None
                                ) -> dict[str, list[tuple[str, float, float]]]:
    from data_manifests.schema import ManifestError, load_manifest

    manifest = load_manifest(path)
    if subset is not None:
        wanted = {v.split for v in manifest.videos if v.split.lower() == subset.lower()}
        if not wanted:
            have = sorted({v.split for v in manifest.videos})
            raise ManifestError(path, None, "split", f"no video in split {subset!r}; "
                                                     f"splits present: {have}")
    out = {}
    for video in manifest.videos:
        if subset is not None and video.split.lower() != subset.lower():
            continue
        if video.segments is None:
            raise ManifestError(path, None, "segments", f"video {video.video_id!r} has no "
                                "interval annotations: detection needs segments")
        out[video.video_id] = [(s.label, s.start, s.end) for s in video.segments]
    return out





def _segment(value, path: Path, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise MetricInputError(f"{path}: {where}: segment {value!r} must be [start, end]")
    start = number(value[0], path, where, "segment start")
    end = number(value[1], path, where, "segment end")
    return start, end


def _preview(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
