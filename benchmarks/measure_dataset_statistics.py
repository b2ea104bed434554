"""Per-video statistics of Charades, Breakfast and THUMOS14 from their official annotation files.

The numbers in the `charades-like`, `breakfast-like` and `thumos-like` presets of
`data_manifests/synthetic/__init__.py` come from this script:

    .venv/bin/python benchmarks/measure_dataset_statistics.py \
        --annotations ../shared/data/annotations [--json out.json]

Sources read (exactly as shipped):
* Charades: `charades/Charades_v1_train.csv`, column `actions` ("c092 11.90 21.20;...", seconds)
  and column `length` (seconds). Videos without actions are counted, then left out of the
  per-video action statistics.
* Breakfast: `breakfast/groundTruth/*.txt`, one label per frame at 15 fps (MS-TCN release);
  a segment is a run of equal labels; `SIL` (silence, the background at both ends) is not an
  action. Activity = the file-name suffix (cereals, coffee, ...).
* THUMOS14: validation set (the weak-supervision training set), `thumos14/official/annotation_val/
  <Class>_val.txt` (Ambiguous_val.txt left out) and durations from
  `thumos14/durations/thumos14_video_length_val.txt`.

Distributions are printed as quantile knots at probabilities 0, 0.1, ..., 1.0 where the end
knots are the 1st and 99th percentiles (the extreme tails are cut), which is how SynthSpec reads
them. "noisy precision" is the label precision of giving every ~2 s clip (the paper's 8x8 clips
at 30 fps) all of its video's labels, against the classes whose segments overlap the clip:
(true clip-label pairs) / (clip-label pairs), over clips every 0.5 s of every labelled video.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

CLIP_SECONDS = 64 / 30  # 8 frames x stride 8 at 30 fps
CLIP_STEP_S = 0.5
PERCENTILES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)

Video = tuple[float, list[tuple[str, float, float]]]  # duration (s), [(label, start, end)]


def read_charades(root: Path) -> tuple[dict[str, Video], int]:
    videos, without = {}, 0
    with (root / "charades" / "Charades_v1_train.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            length = float(row["length"])
            segments = []
            for item in filter(None, row["actions"].split(";")):
                label, start, end = item.split()
                start, end = max(0.0, float(start)), min(length, float(end))
                if end > start:  # a few rows end past the video or have zero length
                    segments.append((label, start, end))
            if not segments:
                without += 1
                continue
            videos[row["id"]] = (length, segments)
    return videos, without


def read_breakfast(root: Path, fps: float = 15.0) -> tuple[dict[str, Video], dict[str, str]]:
    videos, activity = {}, {}
    for path in sorted((root / "breakfast" / "groundTruth").glob("*.txt")):
        labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        segments, start = [], 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start]:
                if labels[start] != "SIL":
                    segments.append((labels[start], start / fps, i / fps))
                start = i
        videos[path.stem] = (len(labels) / fps, segments)
        activity[path.stem] = path.stem.rsplit("_", 1)[1]
    return videos, activity


def read_thumos_val(root: Path) -> dict[str, Video]:
    durations = {}
    for line in (root / "thumos14/durations/thumos14_video_length_val.txt").read_text().split("\n"):
        if line.strip():
            name, seconds, _ = line.split()
            durations[name] = float(seconds)
    segments = defaultdict(list)
    for path in sorted((root / "thumos14/official/annotation_val").glob("*_val.txt")):
        label = path.name[: -len("_val.txt")]
        if label == "Ambiguous":
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                name, start, end = line.split()
                segments[name].append((label, float(start), float(end)))
    return {name: (durations[name], segs) for name, segs in segments.items()}


def knots(values: list[float], digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in np.percentile(values, PERCENTILES)]


def statistics(videos: dict[str, Video]) -> dict:
    per_instance, lengths, counts, classes, covered, overlaps = [], [], [], [], [], []
    noisy_pairs = true_pairs = 0
    for duration, segs in videos.values():
        counts.append(len(segs))
        classes.append(len({s[0] for s in segs}))
        mask = np.zeros(int(np.ceil(duration * 10)) + 1, dtype=bool)  # 0.1 s bins
        for i, (label, start, end) in enumerate(segs):
            per_instance.append((end - start) / duration)
            lengths.append(end - start)
            mask[int(start * 10):int(np.ceil(end * 10))] = True
            overlaps.append(any(j != i and s < end and start < e
                                for j, (_, s, e) in enumerate(segs)))
        covered.append(mask[: max(1, round(duration * 10))].mean())
        labels = {s[0] for s in segs}
        for t0 in np.arange(0.0, max(duration - CLIP_SECONDS, 0.0) + 1e-9, CLIP_STEP_S):
            t1 = t0 + CLIP_SECONDS
            true = {label for label, s, e in segs if s < t1 and t0 < e}
            noisy_pairs += len(labels)
            true_pairs += len(true)
    durations = [d for d, _ in videos.values()]
    return {
        "videos": len(videos),
        "duration_s": knots(durations, 1), "mean_duration_s": round(float(np.mean(durations)), 1),
        "actions_per_video": knots(counts, 1), "mean_actions_per_video": round(np.mean(counts), 2),
        "classes_per_video": round(float(np.mean(classes)), 2),
        "coverage": knots(per_instance), "mean_coverage": round(float(np.mean(per_instance)), 3),
        "segment_s": knots(lengths, 2), "mean_segment_s": round(float(np.mean(lengths)), 2),
        "covered_fraction": round(float(np.mean(covered)), 3),
        "overlapping_instances": round(float(np.mean(overlaps)), 3),
        "noisy_precision": round(true_pairs / max(noisy_pairs, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=Path, default=Path("../shared/data/annotations"))
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    out = {}
    charades, without = read_charades(args.annotations)
    out["charades_train"] = {**statistics(charades), "videos_without_actions": without}
    breakfast, activity = read_breakfast(args.annotations)
    stats = statistics(breakfast)
    per_activity = defaultdict(set)
    for name, (_, segs) in breakfast.items():
        per_activity[activity[name]].update(s[0] for s in segs)
    stats["activities"] = len(per_activity)
    stats["classes_per_activity"] = {a: len(c) for a, c in sorted(per_activity.items())}
    stats["mean_classes_per_activity"] = round(
        float(np.mean([len(c) for c in per_activity.values()])), 2)
    out["breakfast"] = stats
    out["thumos14_val"] = statistics(read_thumos_val(args.annotations))
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
