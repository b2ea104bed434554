"""Action segmentation metrics with the semantics of MS-TCN's ``eval.py`` (yabufarha/ms-tcn).

Inputs are frame-wise label sequences (strings), one per video.

* ``Acc``: frames whose predicted label equals the GT label, pooled over all frames of all
  videos (background frames included).
* ``Edit``: segmental edit score per video, ``1 - levenshtein(P, Y) / max(|P|, |Y|)`` on the
  sequences of non-background segment labels, averaged over videos.
* ``F1@k``: per video, each predicted (non-background) segment is compared with its *single*
  best GT segment (highest IoU, first one among equal IoUs, different labels count as IoU 0);
  it is a true positive when that IoU >= k and that GT segment is not hit yet, else a false
  positive; unhit GT segments are false negatives. tp/fp/fn are summed over videos and
  ``F1 = 2PR / (P + R)``. Segment ends are exclusive frame indices; IoU = intersection / hull,
  as in the official code (the hull equals the union whenever the intersection is positive).

All outputs are fractions in [0, 1] (the official prints percentages).

Background labels (``--background``, default ``("background",)`` as in MS-TCN) form no
segment. Breakfast's ``SIL`` therefore counts as an action unless named.

Deliberate differences (cases where the official script crashes or returns NaN):

* Edit of a video where neither sequence has an action segment is 1 (identical empty
  sequences); the official divides 0 by 0 and makes the whole average NaN.
* a video whose GT has no action segment makes every predicted segment a false positive (the
  official raises on ``argmax`` of an empty array).
* F1 is 0 when there is no true positive (the official's ``nan_to_num`` gives the same).
* a GT/prediction length mismatch is an error naming the video and both lengths (the official
  reads only the first ``len(GT)`` predicted frames and crashes when there are fewer).

Frame-level ``IoU`` and ``IoD`` (as reported by set-supervised segmentation papers, e.g. Action
Sets, SCT, SCV, on Breakfast), our definition: for a video, for each non-background class c,
``I_c`` = frames labelled c in both, ``U_c`` = frames labelled c in either, ``D_c`` = frames
predicted c. ``IoU`` of the video = mean of ``I_c / U_c`` over the classes present in the GT or
the prediction; ``IoD`` of the video = mean of ``I_c / D_c`` over the predicted classes. Both
are averaged over the videos that have such classes (a video whose GT and prediction are all
background is skipped; if all are, the value is NaN).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from downstream.metrics.errors import MetricInputError

log = logging.getLogger(__name__)

DEFAULT_BACKGROUND: tuple[str, ...] = ("background",)
DEFAULT_OVERLAPS: tuple[float, ...] = (0.10, 0.25, 0.50)


def segments_of(labels: Sequence[str], background: Sequence[str] = DEFAULT_BACKGROUND
                ) -> tuple[list[str], list[int], list[int]]:
    """Runs of equal labels, background runs dropped: (labels, starts, exclusive ends) in frames."""
    names, starts, ends = [], [], []
    bg = set(background)
    run_start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[run_start]:
            if labels[run_start] not in bg:
                names.append(labels[run_start])
                starts.append(run_start)
                ends.append(i)
            run_start = i
    return names, starts, ends


def levenshtein(p: Sequence[str], y: Sequence[str]) -> int:
    """Edit distance between two label sequences (insert, delete, substitute cost 1)."""
    previous = list(range(len(y) + 1))
    for i in range(1, len(p) + 1):
        current = [i] + [0] * len(y)
        for j in range(1, len(y) + 1):
            if p[i - 1] == y[j - 1]:
                current[j] = previous[j - 1]
            else:
                current[j] = 1 + min(previous[j], current[j - 1], previous[j - 1])
        previous = current
    return previous[-1]


def edit_score(prediction: Sequence[str], ground_truth: Sequence[str],
               background: Sequence[str] = DEFAULT_BACKGROUND) -> float:
    """Segmental edit score of one video in [0, 1] (1 when neither has an action segment)."""
    p, _, _ = segments_of(prediction, background)
    y, _, _ = segments_of(ground_truth, background)
    longest = max(len(p), len(y))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(p, y) / longest


def f1_counts(prediction: Sequence[str], ground_truth: Sequence[str], overlap: float,
              background: Sequence[str] = DEFAULT_BACKGROUND) -> tuple[int, int, int]:
    """(tp, fp, fn) of one video at IoU threshold ``overlap`` (MS-TCN ``f_score``)."""
    p_label, p_start, p_end = segments_of(prediction, background)
    y_label, y_start, y_end = segments_of(ground_truth, background)
    if not y_label:
        return 0, len(p_label), 0
    y_label_arr = np.array(y_label, dtype=object)
    y_start_arr, y_end_arr = np.array(y_start), np.array(y_end)
    hit = np.zeros(len(y_label), dtype=bool)
    tp = fp = 0
    for label, start, end in zip(p_label, p_start, p_end):
        inter = np.minimum(end, y_end_arr) - np.maximum(start, y_start_arr)
        hull = np.maximum(end, y_end_arr) - np.minimum(start, y_start_arr)
        iou = inter / hull * (y_label_arr == label)
        best = int(np.argmax(iou))  # first maximum, as np.argmax in the official code
        if iou[best] >= overlap and not hit[best]:
            tp += 1
            hit[best] = True
        else:
            fp += 1
    return tp, fp, int(len(y_label) - hit.sum())


def frame_iou_iod(prediction: Sequence[str], ground_truth: Sequence[str],
                  background: Sequence[str] = DEFAULT_BACKGROUND) -> tuple[float, float]:
    """Frame-level (IoU, IoD) of one video; NaN where no class qualifies (module docstring)."""
    pred = np.asarray(prediction, dtype=object)
    gt = np.asarray(ground_truth, dtype=object)
    bg = set(background)
    predicted = {c for c in set(prediction) if c not in bg}
    present = predicted | {c for c in set(ground_truth) if c not in bg}
    ious, iods = [], []
    for c in sorted(present):
        in_pred, in_gt = pred == c, gt == c
        inter = int((in_pred & in_gt).sum())
        ious.append(inter / int((in_pred | in_gt).sum()))
        if c in predicted:
            iods.append(inter / int(in_pred.sum()))
    return (float(np.mean(ious)) if ious else math.nan,
            float(np.mean(iods)) if iods else math.nan)


def evaluate_segmentation(ground_truth: Mapping[str, Sequence[str]],
                          predictions: Mapping[str, Sequence[str]], *,
                          background: Sequence[str] = DEFAULT_BACKGROUND,
                          overlaps: Sequence[float] = DEFAULT_OVERLAPS) -> dict:
    """MS-TCN metrics over videos: video -> frame labels (GT and prediction, same lengths).

    Returns ``{"Acc", "Edit", "F1@10", "F1@25", "F1@50", "IoU", "IoD", "num_videos"}`` as
    fractions in [0, 1]. Every GT video needs a prediction of the same length (MetricInputError).
    """
    if not ground_truth:
        raise MetricInputError("no ground-truth video to evaluate")
    missing = sorted(set(ground_truth) - set(predictions))
    if missing:
        raise MetricInputError(f"{len(missing)} ground-truth videos have no prediction: "
                         f"{', '.join(missing[:10])}")
    extra = sorted(set(predictions) - set(ground_truth))
    if extra:
        log.warning("%d predicted videos are not in the ground truth and are ignored: %s",
                    len(extra), ", ".join(extra[:10]))
    correct = total = 0
    edits, ious, iods = [], [], []
    counts = np.zeros((len(overlaps), 3), dtype=np.int64)  # (tp, fp, fn) per overlap
    for video, gt in ground_truth.items():
        pred = predictions[video]
        if len(pred) != len(gt):
            raise MetricInputError(f"video {video!r}: ground truth has {len(gt)} frames but the "
                             f"prediction has {len(pred)}")
        correct += int(np.sum(np.asarray(pred, dtype=object) == np.asarray(gt, dtype=object)))
        total += len(gt)
        edits.append(edit_score(pred, gt, background))
        for k, overlap in enumerate(overlaps):
            counts[k] += f1_counts(pred, gt, overlap, background)
        iou, iod = frame_iou_iod(pred, gt, background)
        if not math.isnan(iou):
            ious.append(iou)
        if not math.isnan(iod):
            iods.append(iod)
    out: dict = {"Acc": correct / total if total else math.nan,
                 "Edit": float(np.mean(edits))}
    for (tp, fp, fn), overlap in zip(counts, overlaps):
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"F1@{round(overlap * 100):d}"] = float(f1)
    out["IoU"] = float(np.mean(ious)) if ious else math.nan
    out["IoD"] = float(np.mean(iods)) if iods else math.nan
    out["num_videos"] = len(ground_truth)
    return out


# ---------------------------------------------------------------------------------------------
# Loaders: MS-TCN folders


def read_label_file(path: str | Path) -> list[str]:
    """Frame labels of one file: one label per line (MS-TCN ``groundTruth`` layout), or the
    MS-TCN recognition layout (a ``###`` header line, then all labels on one line)."""
    lines = Path(path).read_text().splitlines()
    if lines and lines[0].startswith("###"):
        return [label for line in lines[1:] for label in line.split()]
    return [line.strip() for line in lines if line.strip()]


def read_label_folder(folder: str | Path, videos: Sequence[str] | None = None
                      ) -> dict[str, list[str]]:
    """Video -> frame labels from ``<folder>/<video>.txt`` (all ``.txt`` files by default).

    A file without the ``.txt`` suffix is also accepted for a named video (MS-TCN writes its
    results without suffix).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricInputError(f"{folder}: not a folder of <video>.txt label files")
    if videos is None:
        files = {p.stem: p for p in sorted(folder.glob("*.txt"))}
        if not files:
            raise MetricInputError(f"{folder}: no <video>.txt file")
        return {video: read_label_file(path) for video, path in files.items()}
    out = {}
    for video in videos:
        for candidate in (folder / f"{video}.txt", folder / video):
            if candidate.is_file():
                out[video] = read_label_file(candidate)
                break
    return out


def manifest_ground_truth(path: str | Path, subset: str | None = None) -> dict[str, list[str]]:
    """Video -> MS-TCN frame labels (at each video's fps) from a manifest's segments, for the
    videos of ``subset`` (all when None); steps without a segment are ``background``."""
    from data_manifests.schema import ManifestError, load_manifest
    from downstream.data.seg import frame_label_names

    try:
        manifest = load_manifest(path).split(subset)
    except ManifestError as exc:
        raise MetricInputError(str(exc)) from exc
    lacking = [v.video_id for v in manifest.videos if v.segments is None]
    if lacking:
        raise MetricInputError(f"{path}: {len(lacking)} videos have no segments to take frame "
                               f"labels from: {', '.join(lacking[:10])}")
    return {v.video_id: frame_label_names(v, manifest.classes) for v in manifest.videos}


def evaluate_files(ground_truth: str | Path, predictions: str | Path, *,
                   background: Sequence[str] = DEFAULT_BACKGROUND,
                   subset: str | None = None) -> dict:
    """:func:`evaluate_segmentation` on MS-TCN folders (GT videos define the set). The ground
    truth may also be a manifest folder (frame labels from its segments, ``subset`` = split)."""
    path = Path(ground_truth)
    if (path / "meta.json").exists() or path.name in ("meta.json", "videos.jsonl"):
        gt = manifest_ground_truth(path, subset)
    elif subset is not None:
        raise MetricInputError("--subset needs a manifest as --ground-truth (an MS-TCN folder "
                               "has no splits)")
    else:
        gt = read_label_folder(ground_truth)
    predicted = read_label_folder(predictions, videos=list(gt))
    missing = [video for video in gt if video not in predicted]
    if missing:
        raise MetricInputError(f"{predictions}: no prediction file for {len(missing)} ground-truth "
                         f"videos: {', '.join(missing[:10])}")
    extra = sorted({p.stem for p in Path(predictions).glob("*.txt")} - set(gt))
    if extra:
        log.warning("%s: %d prediction files have no ground truth and are ignored: %s",
                    predictions, len(extra), ", ".join(extra[:10]))
    try:
        return evaluate_segmentation(gt, predicted, background=tuple(background))
    except ValueError as exc:
        raise MetricInputError(f"{predictions}: {exc}") from exc
