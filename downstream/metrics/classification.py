"""Multi-label video classification mAP with the semantics of Charades' ``Charades_v1_classify.m``.

Per class (column), videos are ranked by descending score with a *stable* order among ties
(MATLAB ``sort`` is stable, so an earlier row wins a tie), and the non-interpolated AP is the
mean of the precisions at the ranks of the positives: ``sum(prec[i] for positive i) / npos``.

What the official file does, reproduced here:

* a class without positives has AP ``0 / 0 = NaN``;
* ``mAP = mean(ap)`` with MATLAB's ``mean``, which does not skip NaN: one class without
  positives makes ``mAP`` NaN. ``mAP_nanmean`` is the mean over the classes that have positives;
* ``wAP = sum(ap .* npos) / sum(npos)``; in MATLAB ``NaN * 0`` is NaN, so ``wAP`` is NaN as
  well when a class has no positives (reported as is);
* videos without a prediction line are scored ``-inf`` in every class (they rank last).

Deliberate differences (in the loaders, not in :func:`multilabel_map`):

* videos without any label are excluded. The official script keeps them as all-negative rows
  (with score ``-inf``, because their id is lost while parsing); that only changes an AP when a
  positive also scored ``-inf`` (missing prediction), in which case it gives the positive
  a slightly worse rank than the official script.
* a malformed score line is an error naming the file and line (the official prints a warning
  and reads NaN scores).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from downstream.metrics.errors import MetricInputError

log = logging.getLogger(__name__)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Non-interpolated AP of one class: ``(N,)`` float scores, ``(N,)`` {0, 1} targets.

    Stable descending ranking (ties keep their input order); NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(targets) == 1
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    npos = int(hits.sum())
    if npos == 0:
        return math.nan
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / npos)


def multilabel_map(scores: np.ndarray, targets: np.ndarray) -> dict:
    """Charades mAP of ``(N, K)`` float scores (``-inf`` allowed) against ``(N, K)`` {0, 1} targets.

    Returns ``{"mAP", "wAP", "mAP_nanmean", "ap_per_class"}``: fractions in [0, 1] (NaN as the
    official script gives it, see the module docstring); ``ap_per_class`` is a list of K floats.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise MetricInputError(f"scores {scores.shape} and targets {targets.shape} must both be (N, K)")
    ap = np.array([average_precision(scores[:, k], targets[:, k])
                   for k in range(scores.shape[1])], dtype=np.float64)
    npos = (targets == 1).sum(axis=0).astype(np.float64)
    valid = ~np.isnan(ap)
    total = npos.sum()
    return {
        "mAP": float(ap.mean()) if len(ap) else math.nan,
        "wAP": float((ap * npos).sum() / total) if total > 0 else math.nan,
        "mAP_nanmean": float(ap[valid].mean()) if valid.any() else math.nan,
        "ap_per_class": [float(x) for x in ap],
    }


# ---------------------------------------------------------------------------------------------
# Loaders: ground truth (manifest folder or Charades CSV) and Charades submission files


def read_class_list(path: str | Path) -> list[str]:
    """Class ids of a ``Charades_v1_classes.txt``-style file: ``c000 Holding some clothes``.

    Returns the first token of each non-empty line (the id, e.g. ``c000``), in file order.
    """
    classes = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name = line.split(maxsplit=1)[0]
        if name in classes:
            raise MetricInputError(f"{path}:{line_no}: duplicated class {name!r}")
        classes.append(name)
    if not classes:
        raise MetricInputError(f"{path}: no class in the class list")
    return classes


def read_charades_csv(path: str | Path, classes: Sequence[str]) -> dict[str, set[str]]:
    """Video id -> set of class ids from a Charades CSV (columns ``id`` and ``actions``).

    ``actions`` is ``c092 11.90 21.20;c147 0.00 12.60`` (empty when the video has none).
    """
    known = set(classes)
    out: dict[str, set[str]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "actions"} - set(reader.fieldnames or ())
        if missing:
            raise MetricInputError(f"{path}: missing CSV column(s) {sorted(missing)} "
                             f"(header: {reader.fieldnames})")
        for row_no, row in enumerate(reader, start=2):
            labels = set()
            for item in (row["actions"] or "").split(";"):
                if not item.strip():
                    continue
                name = item.split()[0]
                if name not in known:
                    raise MetricInputError(f"{path}:{row_no}: video {row['id']!r}: class {name!r} "
                                     f"is not in the class list")
                labels.add(name)
            out[row["id"]] = labels
    return out


def read_submission(path: str | Path, num_classes: int) -> dict[str, np.ndarray]:
    """Video id -> ``(K,)`` scores from a Charades submission (``id s_1 ... s_K`` per line)."""
    out: dict[str, np.ndarray] = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        video, values = parts[0], parts[1:]
        if len(values) != num_classes:
            raise MetricInputError(f"{path}:{line_no}: video {video!r} has {len(values)} scores, "
                             f"expected {num_classes} (one per class)")
        try:
            row = np.array([float(v) for v in values], dtype=np.float64)
        except ValueError as exc:
            raise MetricInputError(f"{path}:{line_no}: video {video!r}: {exc}") from exc
        if np.isnan(row).any():
            raise MetricInputError(f"{path}:{line_no}: video {video!r} has NaN scores")
        if video in out:
            raise MetricInputError(f"{path}:{line_no}: duplicated video {video!r}")
        out[video] = row
    return out


def score_matrix(labels: dict[str, set[str]], predictions: dict[str, np.ndarray],
                 classes: Sequence[str], *, source: str = "predictions"
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Align GT and predictions: ``(N, K)`` scores, ``(N, K)`` targets and the N video ids.

    Videos without any label are excluded; GT videos without a prediction score ``-inf``
    (warned); predictions for videos outside the GT are ignored (warned).
    """
    index = {name: k for k, name in enumerate(classes)}
    videos = [v for v in labels if labels[v]]
    dropped = len(labels) - len(videos)
    if dropped:
        log.info("%d ground-truth videos without any label are excluded", dropped)
    missing = [v for v in videos if v not in predictions]
    if missing:
        log.warning("%s: %d ground-truth videos have no prediction line and score -inf: %s",
                    source, len(missing), _preview(missing))
    extra = sorted(set(predictions) - set(labels))
    if extra:
        log.warning("%s: %d predicted videos are not in the ground truth and are ignored: %s",
                    source, len(extra), _preview(extra))
    scores = np.full((len(videos), len(classes)), -np.inf)
    targets = np.zeros((len(videos), len(classes)), dtype=np.int64)
    for i, video in enumerate(videos):
        if video in predictions:
            scores[i] = predictions[video]
        for name in labels[video]:
            targets[i, index[name]] = 1
    return scores, targets, videos


def manifest_ground_truth(path: str | Path, subset: str | None = None
                          ) -> tuple[list[str], dict[str, set[str]]]:
    """(class names in score order, video id -> its set of classes) from a manifest folder, for
    the videos of split ``subset`` (all when None). The labels are ``VideoRecord.labels`` (the
    unit actions of a Breakfast video, the actions of a Charades video): what the ``car`` task
    trains on and writes submissions for (``downstream predict``)."""
    from data_manifests.schema import ManifestError, load_manifest

    try:
        manifest = load_manifest(path).split(subset)
    except ManifestError as exc:
        raise MetricInputError(str(exc)) from exc
    return list(manifest.classes), {v.video_id: set(v.labels) for v in manifest.videos}


def evaluate_files(ground_truth: str | Path, predictions: str | Path, *,
                   subset: str | None = None, classes: str | Path | None = None) -> dict:
    """Charades mAP of a submission file against a manifest folder or a Charades CSV.

    ``classes`` (a ``Charades_v1_classes.txt``-style file) is required with a CSV and refused
    with a manifest (which defines its classes: :func:`manifest_ground_truth`); ``subset`` picks
    a manifest split.
    Returns :func:`multilabel_map`'s dict plus ``classes`` and ``num_videos``.
    """
    gt_path = Path(ground_truth)
    if gt_path.is_dir() or gt_path.name in ("meta.json", "videos.jsonl"):
        if classes is not None:
            raise MetricInputError(f"--classes applies to a Charades CSV; the manifest {gt_path} "
                             f"defines its own classes")
        names, labels = manifest_ground_truth(gt_path, subset)
    else:
        if classes is None:
            raise MetricInputError(f"{gt_path}: a Charades CSV needs --classes (the "
                             f"Charades_v1_classes.txt file that fixes the score order)")
        if subset is not None:
            raise MetricInputError("--subset/--split applies to a manifest, not to a Charades CSV "
                             "(the CSV is one split already)")
        names = read_class_list(classes)
        labels = read_charades_csv(gt_path, names)
    scores = read_submission(predictions, len(names))
    matrix, targets, videos = score_matrix(labels, scores, names, source=str(predictions))
    if not videos:
        raise MetricInputError(f"{gt_path}: no video with a label to evaluate")
    result = multilabel_map(matrix, targets)
    without = [names[k] for k, ap in enumerate(result["ap_per_class"]) if math.isnan(ap)]
    if without:
        log.warning("%d classes have no positive video (AP NaN, so mAP and wAP are NaN as in "
                    "Charades_v1_classify.m; see mAP_nanmean): %s", len(without),
                    _preview(without))
    return {**result, "classes": names, "num_videos": len(videos)}


def _preview(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
