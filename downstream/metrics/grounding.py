"""Temporal sentence grounding recall with the semantics of MMN's ``evaluation.py`` (MCG-NJU/MMN).

For each (video, sentence) query:

1. the predicted moments are sorted by descending score (stable among ties: the earlier moment
   first; MMN's ``torch.sort`` leaves ties unspecified);
2. greedy NMS: walking down that list, a moment not yet suppressed suppresses every later
   moment whose IoU with it is *strictly greater* than the NMS threshold;
3. for each n in ``recall`` and m in ``iou``, the query is a hit when one of the first n kept
   moments has IoU >= m with the GT moment, which is clipped to ``[0, duration]`` (as MMN's
   dataset classes do).

``R@n,IoU=m`` is the fraction of GT queries that are hits. IoU is intersection / hull, as in
MMN (equal to the usual union whenever the intersection is positive). ``mIoU`` (CPL's
``top_1_metric``) is the mean over GT queries of the IoU of the best-scored moment (NMS never
removes it) with the clipped GT moment.

Deliberate difference: a GT query without any prediction counts as a miss (and IoU 0 in mIoU;
MMN always has predictions for every query, so it never faces the case); predictions for
queries absent from the GT are ignored with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from downstream.metrics.errors import MetricInputError, number, read_json, require

log = logging.getLogger(__name__)

Query = tuple[str, int]  # (video id, sentence index)


def moment_iou(moments: np.ndarray, target: Sequence[float]) -> np.ndarray:
    """IoU of ``(M, 2)`` moments (seconds) with one ``(start, end)`` -> ``(M,)``."""
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 2)
    start, end = float(target[0]), float(target[1])
    inter = np.minimum(moments[:, 1], end) - np.maximum(moments[:, 0], start)
    hull = np.maximum(moments[:, 1], end) - np.minimum(moments[:, 0], start)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hull > 0, inter.clip(0) / hull, 0.0)


def nms(moments: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy temporal NMS: ``(M, 2)`` moments, ``(M,)`` scores -> kept ``(K, 2)`` by score.

    A kept moment suppresses later ones with IoU > ``threshold`` (strict, as MMN).
    """
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 2)
    return moments[nms_indices(moments, scores, threshold)]


def nms_indices(moments: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """The indices into ``moments`` that :func:`nms` keeps, best score first."""
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 2)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    moments = moments[order]
    suppressed = np.zeros(len(moments), dtype=bool)
    for i in range(len(moments) - 1):
        if suppressed[i]:
            continue
        suppressed[i + 1:] |= moment_iou(moments[i + 1:], moments[i]) > threshold
    return order[~suppressed]


def recall_at_iou(ground_truth: Mapping[Query, tuple[float, float, float]],
                  predictions: Mapping[Query, Sequence[tuple[float, float, float]]], *,
                  recall: Sequence[int] = (1, 5), iou: Sequence[float] = (0.5, 0.7),
                  nms_threshold: float = 0.5) -> dict:
    """``R@n,IoU=m`` over GT queries.

    ``ground_truth``: (video, sentence_index) -> (duration, start, end) in seconds;
    ``predictions``: (video, sentence_index) -> moments ``(start, end, score)``.
    Returns ``{"R@1,IoU=0.5": fraction, ..., "num_queries": N}``.
    """
    if not ground_truth:
        raise MetricInputError("no ground-truth query to evaluate")
    recall = [int(n) for n in recall]
    if any(n < 1 for n in recall):
        raise MetricInputError(f"recall values must be >= 1, got {recall}")
    ious = np.asarray(iou, dtype=np.float64)
    hits = np.zeros((len(recall), len(ious)))
    missing = [q for q in ground_truth if q not in predictions]
    if missing:
        log.warning("%d ground-truth queries have no prediction and count as misses: %s",
                    len(missing), _preview(missing))
    extra = [q for q in predictions if q not in ground_truth]
    if extra:
        log.warning("%d predicted queries are not in the ground truth and are ignored: %s",
                    len(extra), _preview(extra))
    for query, (duration, start, end) in ground_truth.items():
        moments = predictions.get(query)
        if not moments:
            continue
        target = (max(start, 0.0), min(end, duration))
        array = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
        kept = nms(array[:, :2], array[:, 2], nms_threshold)
        for i, n in enumerate(recall):
            overlap = moment_iou(kept[:n], target)  # (min(n, K),)
            hits[i] += (overlap[:, None] >= ious[None, :]).any(axis=0)
    hits /= len(ground_truth)
    out: dict = {metric_name(n, m): float(hits[i, j])
                 for i, n in enumerate(recall) for j, m in enumerate(ious)}
    out["num_queries"] = len(ground_truth)
    return out


def mean_iou(ground_truth: Mapping[Query, tuple[float, float, float]],
             predictions: Mapping[Query, Sequence[tuple[float, float, float]]]) -> float:
    """Mean over GT queries of the IoU of each query's best-scored moment (ties: the first
    listed) with its GT moment clipped to ``[0, duration]``; a query without a prediction
    counts 0. Same inputs as :func:`recall_at_iou`."""
    if not ground_truth:
        raise MetricInputError("no ground-truth query to evaluate")
    total = 0.0
    for query, (duration, start, end) in ground_truth.items():
        moments = predictions.get(query)
        if not moments:
            continue
        array = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
        best = array[int(np.argsort(-array[:, 2], kind="stable")[0]), :2]
        total += float(moment_iou(best, (max(start, 0.0), min(end, duration)))[0])
    return total / len(ground_truth)


def evaluate_files(ground_truth: str | Path, predictions: str | Path, *,
                   subset: str | None = None, recall: str | Sequence[int] = (1, 5),
                   iou: str | Sequence[float] = (0.5, 0.7), nms: float = 0.5) -> dict:
    """:func:`recall_at_iou` and :func:`mean_iou` (``"mIoU"``) on files; ``recall``/``iou`` may
    be comma lists ("1,5")."""
    recall = _numbers(recall, int, "--recall")
    ious = _numbers(iou, float, "--iou")
    if any(not 0.0 < m <= 1.0 for m in ious):
        raise MetricInputError(f"--iou thresholds must lie in (0, 1], got {ious}")
    if not 0.0 <= nms <= 1.0:
        raise MetricInputError(f"--nms must lie in [0, 1], got {nms}")
    gt = load_grounding_ground_truth(ground_truth, subset)
    predicted = load_grounding_predictions(predictions)
    out = recall_at_iou(gt, predicted, recall=recall, iou=ious, nms_threshold=nms)
    return {**out, "mIoU": mean_iou(gt, predicted)}


def _numbers(value, kind: type, flag: str) -> list:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = [kind(v) for v in items if str(v).strip()]
    except ValueError:
        raise MetricInputError(f"{flag} {value!r}: expected a comma list of numbers") from None
    if not out:
        raise MetricInputError(f"{flag} {value!r}: empty")
    return out


def metric_name(n: int, m: float) -> str:
    """``R@1,IoU=0.5``: the key of recall at n for IoU threshold m."""
    return f"R@{n},IoU={float(m):g}"


# ---------------------------------------------------------------------------------------------
# Loaders


def load_grounding_ground_truth(path: str | Path, split: str | None = None
                                ) -> dict[Query, tuple[float, float, float]]:
    """Query -> (duration, start, end) from a manifest folder (sentences) or a JSON list
    ``[{"video", "sentence_index", "duration", "segment": [s, e]}]``.

    With a manifest, ``sentence_index`` is the position of the sentence in the video's
    ``sentences`` list (0-based) and ``split`` picks a split.
    """
    path = Path(path)
    if path.is_dir() or path.name in ("meta.json", "videos.jsonl"):
        from data_manifests.schema import ManifestError, load_manifest

        manifest = load_manifest(path).split(split)
        out = {}
        for video in manifest.videos:
            if video.sentences is None:
                raise ManifestError(path, None, "sentences", f"video {video.video_id!r} has "
                                    "no sentence annotations: grounding needs sentences")
            for k, sentence in enumerate(video.sentences):
                if sentence.start is None:
                    raise ManifestError(path, None, "sentences", f"video {video.video_id!r}: "
                                        f"sentence {k} ({sentence.text!r}) has no moment to "
                                        "score against (null start and end)")
                out[(video.video_id, k)] = (video.duration, sentence.start, sentence.end)
        return out
    items = _read_json_list(path)
    out = {}
    for i, item in enumerate(items):
        video, index = _query(item, path, i)
        where = f"item {i} ({video!r}, sentence {index})"
        duration = number(require(item, "duration", path, where), path, where, "duration")
        segment = require(item, "segment", path, where)
        if not isinstance(segment, (list, tuple)) or len(segment) != 2:
            raise MetricInputError(f"{path}: {where}: segment {segment!r} must be [start, end]")
        start = number(segment[0], path, where, "segment start")
        end = number(segment[1], path, where, "segment end")
        if (video, index) in out:
            raise MetricInputError(f"{path}: {where}: duplicated query")
        out[(video, index)] = (duration, start, end)
    return out


def load_grounding_predictions(path: str | Path
                               ) -> dict[Query, list[tuple[float, float, float]]]:
    """Query -> moments from ``[{"video", "sentence_index", "moments": [[s, e, score], ...]}]``."""
    path = Path(path)
    out: dict[Query, list[tuple[float, float, float]]] = {}
    for i, item in enumerate(_read_json_list(path)):
        video, index = _query(item, path, i)
        where = f"item {i} ({video!r}, sentence {index})"
        moments = require(item, "moments", path, where)
        if not isinstance(moments, list):
            raise MetricInputError(f"{path}: {where}: 'moments' must be a list of [start, end, score]")
        rows = []
        for j, moment in enumerate(moments):
            if not isinstance(moment, (list, tuple)) or len(moment) != 3:
                raise MetricInputError(f"{path}: {where}: moment {j} {moment!r} must be "
                                 f"[start, end, score]")
            rows.append(tuple(number(v, path, f"{where} moment {j}", name)
                              for v, name in zip(moment, ("start", "end", "score"))))
        if (video, index) in out:
            raise MetricInputError(f"{path}: {where}: duplicated query")
        out[(video, index)] = rows
    return out


def _read_json_list(path: Path) -> list:
    data = read_json(path)
    if not isinstance(data, list):
        raise MetricInputError(f"{path}: expected a JSON list of queries, got {type(data).__name__}")
    return data


def _query(item, path: Path, i: int) -> Query:
    video = require(item, "video", path, f"item {i}")
    index = require(item, "sentence_index", path, f"item {i} ({video!r})")
    if isinstance(index, bool) or not isinstance(index, int):
        raise MetricInputError(f"{path}: item {i} ({video!r}): sentence_index {index!r} must be an "
                         f"integer")
    return str(video), index




def _preview(queries: Sequence[Query], limit: int = 10) -> str:
    shown = ", ".join(f"{v}#{k}" for v, k in queries[:limit])
    return shown + (f", ... ({len(queries) - limit} more)" if len(queries) > limit else "")
