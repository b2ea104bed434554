"""Charades v1 (Sigurdsson et al. 2016) from the official ``Charades_v1_{train,test}.csv``.

Each CSV row is a video: ``actions`` holds ``;``-separated ``cXXX start end`` (seconds) and
``length`` the official video length. Video labels are the classes of all its actions (what
``Charades_v1_classify.m`` scores); segments are the actions as intervals.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from data_manifests.converters.common import (
    KeptApart,
    Quirks,
    SourceFiles,
    check_unique,
    fit_interval,
    num_frames_at,
    parse_float,
    resolve_paths,
    split_order,
)
from data_manifests.schema import ManifestError, ManifestMeta, Segment, VideoRecord

CLASSES_FILE = "Charades_v1_classes.txt"
SPLIT_FILES = {"train": "Charades_v1_train.csv", "test": "Charades_v1_test.csv"}
COLUMNS = ("id", "actions", "length")
# The official frame release (Charades_v1_rgb) is at 24 fps; the original videos keep their own
# rates, which the annotation files do not give.
FPS = 24.0
# Known quirks of the official train CSV: these videos hold actions with start > end (typed in
# the wrong order). They are swapped; what then still lies past the video end is kept apart.
KNOWN_REVERSED = frozenset({"00SL4", "AKKWU", "IOL8Q", "LEOL6"})


def read_classes(files: SourceFiles) -> tuple[str, ...]:
    """Class ids ``c000``..``c156`` in file order, from ``Charades_v1_classes.txt``."""
    path = files.find(CLASSES_FILE)
    classes: list[str] = []
    seen: dict[str, str] = {}
    for line_no, line in enumerate(files.read_lines(path), start=1):
        if not line.strip():
            continue
        class_id, _, name = line.partition(" ")
        if not (class_id.startswith("c") and name.strip()):
            raise ManifestError(path, line_no, "class",
                                f"expected 'cXXX description', got {line!r}")
        check_unique(seen, class_id, f"{path}:{line_no}", "class")
        classes.append(class_id)
    return tuple(classes)


def read_lengths(files: SourceFiles) -> dict[str, tuple[str, float]]:
    """``video id -> (split, length s)`` from both CSVs (Charades-STA borrows them)."""
    out = {}
    for split, path, line_no, row in _rows(files):
        out[row["id"]] = (split, parse_float(row["length"], path, line_no, "length"))
    return out


def build(annotations_dir: Path, *, videos_root: Path | None = None,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """Charades manifest: splits "train" (7,985 videos) and "test" (1,863), 157 classes."""
    files = SourceFiles(annotations_dir)
    quirks = Quirks("charades", files.root)
    classes = read_classes(files)
    known = set(classes)
    videos: list[VideoRecord] = []
    aside: list[KeptApart] = []
    seen: dict[str, str] = {}
    for split, path, line_no, row in _rows(files):
        where = f"{path}:{line_no}"
        video_id = row["id"]
        check_unique(seen, video_id, where, "id")
        duration = parse_float(row["length"], path, line_no, "length")
        if duration <= 0:
            raise ManifestError(path, line_no, "length", f"video {video_id}: length {duration}")
        segments, labels = [], set()
        for entry in filter(None, (e.strip() for e in row["actions"].split(";"))):
            parts = entry.split()
            if len(parts) != 3:
                raise ManifestError(path, line_no, "actions",
                                    f"video {video_id}: expected 'cXXX start end', got {entry!r}")
            label = parts[0]
            if label not in known:
                raise ManifestError(path, line_no, "actions",
                                    f"video {video_id}: unknown class {label!r}")
            # The class is a video label even when its interval is unusable:
            # Charades_v1_classify.m scores it.
            labels.add(label)
            start = parse_float(parts[1], path, line_no, "actions")
            end = parse_float(parts[2], path, line_no, "actions")
            if end <= start:
                if video_id not in KNOWN_REVERSED:
                    raise ManifestError(path, line_no, "actions",
                                        f"video {video_id}: end <= start in {entry!r}")
                quirks.add("action with start > end (known quirk), start and end swapped",
                           f"{where} {video_id} {entry}")
                start, end = end, start
            fitted = fit_interval(start, end, duration, where=where, what=f"{video_id} {entry}",
                                  known_outside=video_id in KNOWN_REVERSED, quirks=quirks)
            if fitted is None:
                quirks.add("action outside the video after swapping, kept apart "
                           "(kept_apart.jsonl; its class stays a video label)",
                           f"{where} {video_id} {entry} (length {duration})")
                aside.append(KeptApart(video_id, split, "segment", "outside_video",
                                       files.rel(where), label, start, end))
                continue
            segments.append(Segment(label, *fitted))
        segments.sort(key=lambda s: (s.start, s.end, s.label))
        if not labels:
            quirks.add("video without actions, kept with empty labels", f"{where} {video_id}")
        videos.append(VideoRecord(
            video_id=video_id, path=f"{video_id}.mp4", split=split, duration=duration, fps=FPS,
            num_frames=num_frames_at(duration, FPS), labels=tuple(sorted(labels)),
            segments=tuple(segments)))
    videos.sort(key=lambda v: (split_order(v.split), v.video_id))
    videos = resolve_paths(videos, videos_root, quirks)
    if kept_apart is not None:
        kept_apart.extend(sorted(aside, key=lambda k: (split_order(k.split or ""), k.video_id,
                                                       k.source)))
    notes = quirks.notes([
        "splits: train = Charades_v1_train.csv, test = Charades_v1_test.csv",
        "labels: classes of all actions of the video (what Charades_v1_classify.m scores)",
        f"fps {FPS}: the official frame release rate; original videos keep their own rates",
        f"path: <id>.mp4 (the Charades_v1_480 release); num_frames = floor(length * {FPS})",
    ])
    meta = ManifestMeta(dataset="charades", classes=classes, fps=FPS,
                        sources=dict(sorted(files.sha256.items())), notes=notes)
    return meta, videos


def _rows(files: SourceFiles):
    """Yield ``(split, path, line number, row dict)`` over both official CSVs."""
    for split, name in SPLIT_FILES.items():
        path = files.find(name)
        reader = csv.reader(io.StringIO(files.read_text(path), newline=""))
        header = next(reader, None)
        if header is None or any(col not in header for col in COLUMNS):
            raise ManifestError(path, 1, "header", f"expected columns {COLUMNS}, got {header}")
        for row in reader:
            line_no = reader.line_num  # last physical line of the row (descriptions hold newlines)
            if not row:
                continue
            if len(row) != len(header):
                raise ManifestError(path, line_no, None,
                                    f"expected {len(header)} columns, got {len(row)}: {row[:1]}")
            yield split, path, line_no, dict(zip(header, row))
