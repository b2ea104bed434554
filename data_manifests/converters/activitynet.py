"""ActivityNet v1.3 (200 classes) from BSN's files, derived from ``activity_net.v1-3.min.json``.

The official JSON is not in the stored release; BSN's ``video_info_new.csv`` (every video:
frames, seconds, fps, subset), ``anet_anno_action.json`` (train/val intervals in seconds) and
``action_name.csv`` (the 200 class names) hold the same content. Test annotations are
withheld by the dataset: test videos have ``segments = null`` (unknown), not ``[]``.
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
    split_order,
)
from data_manifests.schema import ManifestError, ManifestMeta, Segment, VideoRecord

INFO_FILE = "video_info_new.csv"
ANNOTATION_FILE = "anet_anno_action.json"
CLASS_FILE = "action_name.csv"
SUBSETS = {"training": "train", "validation": "val", "testing": "test"}
INFO_COLUMNS = ("video", "numFrame", "seconds", "rfps", "subset")
# Known quirks of the official annotations: these videos hold zero-length instances
# ([0, 0] and the like); they are kept apart (kept_apart.jsonl, reason zero_length).
KNOWN_ZERO_LENGTH = frozenset({
    "v_2IRQ5fPwHV8", "v_6KXVjADefBY", "v_6kgJx6ahgq0", "v_8slE1UskRS4", "v_EJxWhTE_ZeE",
    "v_H-yBxySDyTw", "v_QhiKgeJV3k0", "v_RuBLAghI1vE", "v_ZZVrH3Hv1fM", "v_dJVWRkiRXHM",
    "v_e6J_ygZ779A", "v_sCzauf2u4dc",
})


def read_classes(files: SourceFiles) -> tuple[str, ...]:
    """The 200 class names in file order (header ``action``)."""
    path = files.find(CLASS_FILE)
    reader = csv.reader(io.StringIO(files.read_text(path), newline=""))
    header = next(reader, None)
    if header != ["action"]:
        raise ManifestError(path, 1, "header", f"expected ['action'], got {header}")
    seen: dict[str, str] = {}
    for row in reader:
        if not row:
            continue
        if len(row) != 1 or not row[0].strip():
            raise ManifestError(path, reader.line_num, "action", f"bad row {row}")
        check_unique(seen, row[0], f"{path}:{reader.line_num}", "class")
    return tuple(seen)


def build(annotations_dir: Path, *, videos_root: Path | None = None,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """ActivityNet 1.3 manifest: "train" (9,649), "val" (4,728), "test" (4,851 videos)."""
    files = SourceFiles(annotations_dir)
    quirks = Quirks("activitynet", files.root)
    classes = read_classes(files)
    known = set(classes)
    info_path = files.find(INFO_FILE)
    reader = csv.DictReader(io.StringIO(files.read_text(info_path), newline=""))
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in INFO_COLUMNS):
        raise ManifestError(info_path, 1, "header",
                            f"expected columns {INFO_COLUMNS}, got {reader.fieldnames}")
    info: dict[str, tuple[str, float, float, int]] = {}
    seen: dict[str, str] = {}
    for row in reader:
        line_no = reader.line_num
        if None in row or any(row[c] is None for c in INFO_COLUMNS):
            raise ManifestError(info_path, line_no, None, f"wrong number of columns: {row}")
        video_id = row["video"]
        check_unique(seen, video_id, f"{info_path}:{line_no}", "video")
        if row["subset"] not in SUBSETS:
            raise ManifestError(info_path, line_no, "subset", f"unknown subset {row['subset']!r}")
        seconds = parse_float(row["seconds"], info_path, line_no, "seconds")
        fps = parse_float(row["rfps"], info_path, line_no, "rfps")
        if not (seconds > 0 and fps > 0):
            raise ManifestError(info_path, line_no, "seconds",
                                f"{video_id}: seconds {seconds}, rfps {fps} must be > 0")
        info[video_id] = (SUBSETS[row["subset"]], seconds, fps,
                          parse_int(row["numFrame"], info_path, line_no, "numFrame"))

    anno_path = files.find(ANNOTATION_FILE)
    annotations = files.read_json(anno_path)
    unknown_videos = sorted(set(annotations) - set(info))
    if unknown_videos:
        raise ManifestError(anno_path, None, "video",
                            f"videos not in {INFO_FILE}: {unknown_videos[:5]}")
    videos: list[VideoRecord] = []
    aside: list[KeptApart] = []
    for video_id in sorted(info, key=lambda v: (split_order(info[v][0]), v)):
        split, duration, fps, num_frames = info[video_id]
        segments: list[Segment] | None = None
        labels: set[str] = set()
        if split != "test":
            segments = []
            entries = annotations.get(video_id, {}).get("annotations", [])
            for i, entry in enumerate(entries):
                # JSON has no useful line numbers: errors name the file and the item.
                where = f"{anno_path}:{video_id}.annotations[{i}]"
                try:
                    label, (start, end) = entry["label"], map(float, entry["segment"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise error_at(where, "segment", f"bad entry {entry}: {exc!r}") from exc
                if label not in known:
                    raise error_at(where, "label", f"unknown class {label!r}")
                labels.add(label)
                if end <= start:
                    if video_id not in KNOWN_ZERO_LENGTH:
                        raise error_at(where, "segment",
                                       f"end <= start: [{start}, {end}] ({label})")
                    quirks.add("zero-length instance (known quirk), kept apart "
                               "(kept_apart.jsonl; its class stays a video label)",
                               f"{where} {label} [{start}, {end}]")
                    aside.append(KeptApart(video_id, split, "segment", "zero_length",
                                           files.rel(where), label, start, end))
                    continue
                fitted = fit_interval(start, end, duration, where=where, what=video_id,
                                      known_outside=False, quirks=quirks)
                segments.append(Segment(label, *fitted))  # type: ignore[misc]
            segments.sort(key=lambda s: (s.start, s.end, s.label))
        elif annotations.get(video_id, {}).get("annotations"):
            raise ManifestError(anno_path, None, video_id, "test video with annotations")
        videos.append(VideoRecord(
            video_id=video_id, path=f"{video_id}.mp4", split=split, duration=duration, fps=fps,
            num_frames=num_frames, labels=tuple(sorted(labels)),
            segments=None if segments is None else tuple(segments)))
    videos = resolve_paths(videos, videos_root, quirks)
    if kept_apart is not None:
        kept_apart.extend(aside)
    notes = quirks.notes([
        ("source: BSN's video_info_new.csv / anet_anno_action.json / action_name.csv, derived "
         "from activity_net.v1-3.min.json (not in the stored release)"),
        ("splits: training -> train, validation -> val, testing -> test; test annotations are "
         "withheld: test videos have segments = null"),
        ("duration = seconds, num_frames = numFrame, fps = rfps (numFrame / seconds) from "
         "video_info_new.csv"),
        ("path: <id>.mp4 (ids keep BSN's v_ prefix); with --videos-root, .mkv/.webm "
         "downloads are found too"),
    ])
    meta = ManifestMeta(dataset="activitynet", classes=classes, fps=30.0,
                        sources=dict(sorted(files.sha256.items())), notes=notes)
    return meta, videos
