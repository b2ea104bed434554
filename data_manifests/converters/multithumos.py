"""MultiTHUMOS (Yeung et al. 2017): dense multi-label intervals on the 413 THUMOS'14 videos.

Official files: one ``<Class>.txt`` per class (``video start end`` in seconds) for the 65
classes, covering validation and test videos. Durations and the split of each video come from
``multithumos_superevents.json`` (the super-events release, which carries them). The official
``class_list.txt`` is not in the stored release; the class order comes from
``class_list_DERIVED.txt`` (1-based ids, agreeing with the super-events ids), else from the
sorted file names.
"""

from __future__ import annotations

from pathlib import Path

from data_manifests.converters.common import (
    KeptApart,
    Quirks,
    SourceFiles,
    error_at,
    fit_interval,
    num_frames_at,
    parse_float,
    read_id_names,
    resolve_paths,
    split_order,
    whitespace_rows,
)
from data_manifests.schema import ManifestError, ManifestMeta, Segment, VideoRecord

CLASS_LIST = "class_list_DERIVED.txt"
DURATIONS_FILE = "multithumos_superevents.json"
ANNOTATIONS_FOLDER = "annotations"
SUBSETS = {"training": "val", "testing": "test"}  # THUMOS'14 validation videos train
FPS = 30.0  # nominal: no MultiTHUMOS file gives per-video fps (THUMOS'14 videos are mostly 30)
# Known quirks of the official files. Zero-length instances (start == end) of Squat in these
# videos are kept apart (reason zero_length). Instances that start after the video end (by the
# super-events durations), or end more than MAX_OVERSHOOT_S past it (typos such as 4000.36 s in
# a 1315 s video), in these videos are kept apart (reason outside_video).
KNOWN_ZERO_LENGTH = frozenset({
    "video_test_0000737", "video_validation_0000155", "video_validation_0000159",
    "video_validation_0000160",
})
KNOWN_OUTSIDE = frozenset({
    "video_test_0000270", "video_test_0000429", "video_test_0000814", "video_test_0000950",
    "video_test_0001081", "video_test_0001255", "video_validation_0000054",
    "video_validation_0000364", "video_validation_0000411", "video_validation_0000413",
    "video_validation_0000856",
})


def read_classes(files: SourceFiles) -> tuple[str, ...]:
    """Class names in id order (``<id> <name>`` rows, ids 1..65)."""
    path = files.find(CLASS_LIST, required=False)
    if path is None:
        return tuple(sorted(p.stem for p in _annotation_files(files)))
    return read_id_names(files, path, first_id=1)


def read_durations(files: SourceFiles) -> tuple[dict[str, tuple[str, float]], Path]:
    """``video -> (split, duration s)`` from the super-events JSON."""
    path = files.find(DURATIONS_FILE)
    raw = files.read_json(path)
    if not isinstance(raw, dict):
        raise ManifestError(path, None, None, "expected {video: {subset, duration, ...}}")
    out = {}
    for video_id, item in raw.items():
        try:
            subset, duration = item["subset"], float(item["duration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(path, None, video_id, f"bad entry: {exc!r}") from exc
        if subset not in SUBSETS:
            raise ManifestError(path, None, video_id, f"unknown subset {subset!r}")
        if not duration > 0:
            raise ManifestError(path, None, video_id, f"duration {duration}")
        out[video_id] = (SUBSETS[subset], duration)
    return out, path


def build(annotations_dir: Path, *, videos_root: Path | None = None,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """MultiTHUMOS manifest: "val" (200 videos) and "test" (213), 65 classes."""
    files = SourceFiles(annotations_dir)
    quirks = Quirks("multithumos", files.root)
    classes = read_classes(files)
    durations, durations_path = read_durations(files)
    found = {p.stem for p in _annotation_files(files)}
    if found != set(classes):
        raise ManifestError(files.root, None, "classes",
                            f"annotation files without a class: {sorted(found - set(classes))}; "
                            f"classes without a file: {sorted(set(classes) - found)}")
    segments: dict[str, list[Segment]] = {}
    labels: dict[str, set[str]] = {}
    aside: list[KeptApart] = []
    for label in classes:
        path = files.find(f"{label}.txt")
        for line_no, parts in whitespace_rows(files, path, "video start end"):
            where = f"{path}:{line_no}"
            video_id = parts[0]
            start = parse_float(parts[1], path, line_no, "start")
            end = parse_float(parts[2], path, line_no, "end")
            if video_id not in durations:
                raise error_at(where, "video", f"video {video_id!r} not in {DURATIONS_FILE}")
            split, duration = durations[video_id]
            labels.setdefault(video_id, set()).add(label)
            segments.setdefault(video_id, [])
            reason = None
            if end <= start:
                if not (end == start and video_id in KNOWN_ZERO_LENGTH):
                    raise error_at(where, "end", f"{video_id}: end <= start: [{start}, {end}]")
                reason = "zero_length"
                quirks.add("zero-length instance (known quirk), kept apart (kept_apart.jsonl)",
                           f"{where} {video_id} {label} [{start}, {end}]")
            else:
                fitted = fit_interval(start, end, duration, where=where, what=video_id,
                                      known_outside=video_id in KNOWN_OUTSIDE, quirks=quirks)
                if fitted is None:
                    reason = "outside_video"
                    quirks.add("instance outside the video (known quirk), kept apart "
                               "(kept_apart.jsonl)",
                               f"{where} {video_id} {label} [{start}, {end}] (length {duration})")
                else:
                    segments[video_id].append(Segment(label, *fitted))
            if reason is not None:
                aside.append(KeptApart(video_id, split, "segment", reason, files.rel(where), label,
                                       start, end))
    missing = sorted(set(durations) - set(segments))
    if missing:
        raise ManifestError(durations_path, None, "video",
                            f"videos without any annotation: {missing[:5]}")
    videos = [
        VideoRecord(
            video_id=video_id, path=f"{video_id}.mp4", split=durations[video_id][0],
            duration=durations[video_id][1], fps=FPS,
            num_frames=num_frames_at(durations[video_id][1], FPS),
            labels=tuple(sorted(labels[video_id])),
            segments=tuple(sorted(segments[video_id], key=lambda s: (s.start, s.end, s.label))))
        for video_id in sorted(segments, key=lambda v: (split_order(durations[v][0]), v))
    ]
    videos = resolve_paths(videos, videos_root, quirks)
    if kept_apart is not None:
        kept_apart.extend(sorted(aside, key=lambda k: (k.split or "", k.video_id, k.source)))
    notes = quirks.notes([
        ("splits: val = THUMOS'14 validation videos (super-events subset 'training'), "
         "test = THUMOS'14 test videos (subset 'testing')"),
        (f"durations from {DURATIONS_FILE}; fps {FPS} nominal (no MultiTHUMOS file gives it), "
         "num_frames = floor(duration * fps)"),
        f"class order from {CLASS_LIST} (not official; ids agree with the super-events ids)"
        if files.find(CLASS_LIST, required=False) else "class order: sorted file names",
        "labels: classes of all the video's official instances",
    ])
    meta = ManifestMeta(dataset="multithumos", classes=classes, fps=FPS,
                        sources=dict(sorted(files.sha256.items())), notes=notes)
    return meta, videos


def _annotation_files(files: SourceFiles) -> list[Path]:
    """The per-class ``*.txt`` files: those in a folder called ``annotations``."""
    out = []
    for name in files.names():
        if name.endswith(".txt"):
            path = files.find(name)
            if path is not None and path.parent.name == ANNOTATIONS_FOLDER:
                out.append(path)
    return out
