"""THUMOS'14 temporal detection (20 classes) from the official per-class annotation files.

Official files: ``detclasslist.txt`` (the 20 classes), ``<Class>_val.txt`` / ``<Class>_test.txt``
(``video start end`` in seconds) and ``Ambiguous_{val,test}.txt``. Durations and frame counts
come from ``thumos14_video_length_{val,test}.txt`` (TURN's copy of the official lengths), fps
from ``fps_dict.json`` and the point labels from LACP's ``point_labels.csv`` (one point per
training instance, as a frame index at the video's native fps).

Split names: the field trains on the *validation* videos and tests on the test videos; the
manifest names them "val" and "test" as the files do, so a weakly supervised recipe trains on
split "val".
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
    error_at,
    fit_interval,
    parse_float,
    parse_int,
    resolve_paths,
    whitespace_rows,
)
from data_manifests.schema import ManifestError, ManifestMeta, Point, Segment, VideoRecord

CLASS_LIST = "detclasslist.txt"
SPLITS = {"val": "val", "test": "test"}  # manifest split -> file-name suffix
LENGTH_FILE = "thumos14_video_length_{}.txt"
FPS_FILE = "fps_dict.json"
POINTS_FILE = "point_labels.csv"
AMBIGUOUS = "Ambiguous"
# Known quirks of the official files: these videos hold instances that start after the video
# ends (by the official lengths); they are kept apart (kept_apart.jsonl, reason outside_video).
# LACP's point labels leave out exactly the four validation ones (3,007 - 4 = 3,003 points).
KNOWN_OUTSIDE = frozenset({
    "video_validation_0000364", "video_validation_0000856",
    "video_test_0000270", "video_test_0000814", "video_test_0001081",
})


def read_class_list(files: SourceFiles) -> tuple[str, ...]:
    """The 20 detection classes in ``detclasslist.txt`` order (``<index> <name>`` rows)."""
    path = files.find(CLASS_LIST)
    seen: dict[str, str] = {}
    for line_no, parts in whitespace_rows(files, path, "<index> <name>"):
        parse_int(parts[0], path, line_no, "index")
        check_unique(seen, parts[1], f"{path}:{line_no}", "class")
    return tuple(seen)


def read_intervals(files: SourceFiles, path: Path) -> list[tuple[str, float, float, str]]:
    """``(video, start, end, "file:line")`` rows of one per-class file."""
    rows = []
    for line_no, parts in whitespace_rows(files, path, "video start end"):
        start = parse_float(parts[1], path, line_no, "start")
        end = parse_float(parts[2], path, line_no, "end")
        rows.append((parts[0], start, end, f"{path}:{line_no}"))
    return rows


def read_lengths(files: SourceFiles, path: Path) -> dict[str, tuple[float, int]]:
    """``video -> (duration s, num_frames)`` from ``video duration_sec num_frames`` rows."""
    out: dict[str, tuple[float, int]] = {}
    seen: dict[str, str] = {}
    for line_no, parts in whitespace_rows(files, path, "video duration num_frames"):
        check_unique(seen, parts[0], f"{path}:{line_no}", "video")
        duration = parse_float(parts[1], path, line_no, "duration")
        if duration <= 0:
            raise ManifestError(path, line_no, "duration", f"{parts[0]}: duration {duration}")
        out[parts[0]] = (duration, parse_int(parts[2], path, line_no, "num_frames"))
    return out


def read_fps(files: SourceFiles) -> dict[str, float]:
    path = files.find(FPS_FILE)
    raw = files.read_json(path)
    try:
        return {str(k): float(v) for k, v in raw.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise ManifestError(path, None, None, f"expected {{video: fps}} JSON: {exc}") from exc


def read_points(files: SourceFiles, path: Path, classes: tuple[str, ...],
                fps: dict[str, float]) -> dict[str, list[tuple[Point, str]]]:
    """``video -> [(Point, "file:line")]``; the point frame is converted with the video's fps."""
    reader = csv.DictReader(io.StringIO(files.read_text(path), newline=""))
    need = ("class", "class_index", "video_id", "point")
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
        raise ManifestError(path, 1, "header", f"expected columns {need}, got {reader.fieldnames}")
    out: dict[str, list[tuple[Point, str]]] = {}
    for row in reader:
        line_no = reader.line_num
        if None in row or any(row[c] is None for c in need):
            raise ManifestError(path, line_no, None, f"wrong number of columns: {row}")
        label, video_id = row["class"], row["video_id"]
        if label not in classes:
            raise ManifestError(path, line_no, "class", f"unknown class {label!r}")
        index = parse_int(row["class_index"], path, line_no, "class_index")
        if not (0 <= index < len(classes) and classes[index] == label):
            raise ManifestError(path, line_no, "class_index",
                                f"{index} does not name {label!r} in {CLASS_LIST}")
        if video_id not in fps:
            raise ManifestError(path, line_no, "video_id", f"no fps for video {video_id!r}")
        frame = parse_int(row["point"], path, line_no, "point")
        point = Point(label, frame / fps[video_id])
        out.setdefault(video_id, []).append((point, f"{path}:{line_no}"))
    return out


def build(annotations_dir: Path, *, videos_root: Path | None = None,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """THUMOS'14 manifest: "val" (200 videos, the training split) and "test" (212 videos)."""
    files = SourceFiles(annotations_dir)
    quirks = Quirks("thumos14", files.root)
    classes = read_class_list(files)
    fps = read_fps(files)
    points_path = files.find(POINTS_FILE, required=False)
    points = read_points(files, points_path, classes, fps) if points_path else {}
    aside: list[KeptApart] = []
    videos: list[VideoRecord] = []
    ambiguous_only: set[str] = set()
    for split, suffix in SPLITS.items():
        lengths = read_lengths(files, files.find(LENGTH_FILE.format(suffix)))
        segments: dict[str, list[Segment]] = {}
        labels: dict[str, set[str]] = {}
        seen: dict[tuple[str, str, float, float], str] = {}
        for label in classes:
            for video_id, start, end, where in read_intervals(
                    files, files.find(f"{label}_{suffix}.txt")):
                segment = _fit(video_id, start, end, where, lengths, label, quirks)
                labels.setdefault(video_id, set()).add(label)
                segments.setdefault(video_id, [])
                first = seen.setdefault((video_id, label, start, end), where)
                if first != where:  # the same row twice: one instance, not two to detect
                    aside.append(KeptApart(video_id, split, "segment", "duplicate",
                                           files.rel(where), label, start, end))
                    quirks.add("row repeated in a class file, kept once (the copy is in "
                               "kept_apart.jsonl)", f"{where} repeats {files.rel(first)}")
                elif segment is None:
                    aside.append(KeptApart(video_id, split, "segment", "outside_video",
                                           files.rel(where), label, start, end))
                    quirks.add("instance that starts after the video end (known quirk), kept "
                               "apart (kept_apart.jsonl; its class stays a video label)",
                               f"{where} {video_id} {label} [{start}, {end}] "
                               f"(length {lengths[video_id][0]})")
                else:
                    segments[video_id].append(segment)
        ambiguous_path = files.find(f"{AMBIGUOUS}_{suffix}.txt")
        _check_no_unknown_class_files(ambiguous_path.parent, suffix, classes)
        for video_id, start, end, where in read_intervals(files, ambiguous_path):
            if video_id not in lengths:
                raise error_at(where, "video", f"video {video_id!r} has no length in "
                                               f"{LENGTH_FILE.format(suffix)}")
            in_manifest = video_id in segments
            aside.append(KeptApart(video_id, split if in_manifest else None, "segment",
                                   "ambiguous", files.rel(where), AMBIGUOUS, start, end))
            quirks.add(f"{split}: Ambiguous interval, kept apart (kept_apart.jsonl), not a class",
                       f"{where} {video_id} [{start}, {end}]")
            if not in_manifest and video_id not in ambiguous_only:
                ambiguous_only.add(video_id)
                quirks.add(f"{split}: video with only Ambiguous intervals, not in the manifest",
                           f"{where} {video_id}")
        for video_id in sorted(segments):
            duration, num_frames = lengths[video_id]
            if video_id not in fps:
                raise ManifestError(files.find(FPS_FILE), None, video_id, "no fps for the video")
            video_points = None
            if points_path is not None and split == "val":
                video_points = tuple(sorted(
                    (_check_point(p, where, duration) for p, where in points.get(video_id, [])),
                    key=lambda p: (p.time, p.label)))
            videos.append(VideoRecord(
                video_id=video_id, path=f"{video_id}.mp4", split=split, duration=duration,
                fps=fps[video_id], num_frames=num_frames,
                labels=tuple(sorted(labels[video_id])),
                segments=tuple(sorted(segments[video_id], key=lambda s: (s.start, s.end, s.label))),
                points=video_points))
    unknown = sorted(set(points) - {v.video_id for v in videos if v.split == "val"})
    if unknown:
        raise ManifestError(points_path, None, "video_id",  # type: ignore[arg-type]
                            f"point labels for videos not in the val split: {unknown[:5]}")
    videos = resolve_paths(videos, videos_root, quirks)
    if kept_apart is not None:
        kept_apart.extend(sorted(aside, key=lambda k: (k.split or "", k.video_id, k.source)))
    notes = quirks.notes([
        ("splits: val = the official validation videos (the training split in the field), "
         "test = the official test videos; a video is in the manifest when one of the 20 "
         "classes annotates it"),
        ("Ambiguous intervals are not a class: they are kept apart in kept_apart.jsonl "
         "(reason ambiguous), for evaluations that ignore detections inside them"),
        ("duration and num_frames from thumos14_video_length_{val,test}.txt; fps from "
         "fps_dict.json"),
        "points: LACP point_labels.csv (val only; test videos have points = null); "
        "time = point frame / fps" if points_path else
        "points: point_labels.csv not found, points = null",
        "labels: classes of all the video's official instances",
    ])
    meta = ManifestMeta(dataset="thumos14", classes=classes, fps=30.0,
                        sources=dict(sorted(files.sha256.items())), notes=notes)
    return meta, videos


def _check_no_unknown_class_files(folder: Path, suffix: str, classes: tuple[str, ...]) -> None:
    """A per-class file whose class is not in the class list would be silently ignored."""
    for path in sorted(folder.glob(f"*_{suffix}.txt")):
        label = path.name[:-len(f"_{suffix}.txt")]
        if label != AMBIGUOUS and label not in classes:
            raise ManifestError(path, None, "class",
                                f"unknown class {label!r} (not in {CLASS_LIST})")


def _fit(video_id: str, start: float, end: float, where: str,
         lengths: dict[str, tuple[float, int]], label: str, quirks: Quirks) -> Segment | None:
    if video_id not in lengths:
        raise error_at(where, "video", f"video {video_id!r} has no length in the duration file")
    if end <= start:
        raise error_at(where, "end", f"{video_id}: end <= start: [{start}, {end}]")
    fitted = fit_interval(start, end, lengths[video_id][0], where=where, what=video_id,
                          known_outside=video_id in KNOWN_OUTSIDE, quirks=quirks)
    return None if fitted is None else Segment(label, *fitted)


def _check_point(point: Point, where: str, duration: float) -> Point:
    if not 0 <= point.time <= duration:
        raise error_at(where, "point",
                            f"time {point.time:.3f} s ({point.label}) outside the video "
                            f"[0, {duration}]")
    return point
