"""Statistics of a (synthetic or real) manifest with segments: what `data synth` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from data_manifests.schema import Manifest


def summarize(manifest: Manifest) -> dict[str, Any]:
    """Counts and per-video means over videos that have segments.

    ``instance_coverage``: mean of segment length / video length; ``covered_fraction``: mean
    fraction of a video inside any segment; ``actions_per_video``: mean number of segments;
    ``labels_per_video``: mean number of distinct classes.
    """
    per_instance, covered, counts, labels = [], [], [], []
    for video in manifest:
        if not video.segments:
            continue
        for seg in video.segments:
            per_instance.append((seg.end - seg.start) / video.duration)
        mask = np.zeros(max(1, round(video.duration * 100)), dtype=bool)  # 10 ms bins
        for seg in video.segments:
            mask[int(seg.start * 100):round(seg.end * 100)] = True
        covered.append(mask.mean())
        counts.append(len(video.segments))
        labels.append(len(video.labels))
    splits = {}
    for video in manifest:
        splits[video.split] = splits.get(video.split, 0) + 1
    return {
        "dataset": manifest.meta.dataset, "videos": len(manifest), "splits": splits,
        "classes": len(manifest.classes), "activities": len(manifest.meta.activities),
        "mean_duration_s": float(np.mean([v.duration for v in manifest])),
        "instance_coverage": float(np.mean(per_instance)) if per_instance else 0.0,
        "covered_fraction": float(np.mean(covered)) if covered else 0.0,
        "actions_per_video": float(np.mean(counts)) if counts else 0.0,
        "labels_per_video": float(np.mean(labels)) if labels else 0.0,
    }


def summary_paragraph(stats: dict[str, Any], out_dir: str) -> str:
    splits = ", ".join(f"{n} {name}" for name, n in stats["splits"].items())
    return (f"{stats['dataset']} in {out_dir}: {stats['videos']} videos ({splits}), "
            f"{stats['mean_duration_s']:.1f} s long on average, {stats['classes']} classes, "
            f"{stats['activities']} activities; {stats['actions_per_video']:.2f} action "
            f"instances ({stats['labels_per_video']:.2f} distinct classes) per video, each "
            f"covering {100 * stats['instance_coverage']:.1f}% of its video on average; "
            f"{100 * stats['covered_fraction']:.1f}% of video time lies inside some action.")
