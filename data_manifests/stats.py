"""Counts that describe a manifest, in total and per split (``weakfeat data stats``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from data_manifests.converters.build import read_kept_apart
from data_manifests.converters.common import split_order
from data_manifests.schema import Manifest, VideoRecord


def manifest_stats(manifest: Manifest,
                   kept_apart: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"dataset", "num_classes", "num_activities", "total": counts, "splits": {split: counts}}``.

    counts: videos, videos_with_labels, classes (distinct classes labelled), segments, points,
    sentences, activities (distinct), hours, kept_apart (``{reason: n}``, from the manifest
    folder's ``kept_apart.jsonl`` when there is one, or ``kept_apart`` when given), and
    source_segments / source_sentences: the instances of the official files (the manifest's
    plus those kept apart, Ambiguous intervals not counted).
    """
    if kept_apart is None:
        kept_apart = read_kept_apart(manifest.root) if manifest.root is not None else []
    splits = sorted({v.split for v in manifest.videos}, key=split_order)
    return {
        "dataset": manifest.meta.dataset,
        "num_classes": len(manifest.meta.classes),
        "num_activities": len(manifest.meta.activities),
        "total": _counts(manifest.videos, kept_apart),
        "splits": {
            split: _counts([v for v in manifest.videos if v.split == split],
                           [k for k in kept_apart if k.get("split") == split])
            for split in splits
        },
    }


def _counts(videos: Iterable[VideoRecord], kept_apart: list[dict[str, Any]]) -> dict[str, Any]:
    videos = list(videos)
    segments = sum(len(v.segments or ()) for v in videos)
    sentences = sum(len(v.sentences or ()) for v in videos)
    # Instances of the official files that the manifest keeps apart (outside the video, zero
    # length) still count as source instances; Ambiguous intervals are no class instance.
    aside = Counter(str(k.get("kind")) for k in kept_apart if k.get("reason") != "ambiguous")
    return {
        "videos": len(videos),
        "videos_with_labels": sum(bool(v.labels) for v in videos),
        "classes": len({label for v in videos for label in v.labels}),
        "segments": segments,
        "points": sum(len(v.points or ()) for v in videos),
        "sentences": sentences,
        "activities": len({v.activity for v in videos if v.activity is not None}),
        "hours": round(sum(v.duration for v in videos) / 3600, 2),
        "kept_apart": dict(sorted(Counter(str(k.get("reason")) for k in kept_apart).items())),
        "source_segments": segments + aside["segment"],
        "source_sentences": sentences + aside["sentence"],
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A plain-text table: one row per split plus a total row."""
    columns = ("videos", "videos_with_labels", "classes", "segments", "points", "sentences",
               "activities", "hours")
    rows = [("split", *columns, "kept_apart")]
    for name, counts in [*stats["splits"].items(), ("total", stats["total"])]:
        aside = ", ".join(f"{r}={n}" for r, n in counts["kept_apart"].items()) or "-"
        rows.append((name, *(str(counts[c]) for c in columns), aside))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{stats['dataset']}: {stats['num_classes']} classes, "
             + f"{stats['num_activities']} activities"]
    for row in rows:
        lines.append("  ".join(cell.rjust(w) if i else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
