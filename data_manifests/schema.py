"""The manifest: the one description of a dataset that every stage reads.

A manifest is a folder holding

* ``meta.json``: dataset name, class list, activity list, default fps, and the sha256 of every
  source annotation file it was built from;
* ``videos.jsonl``: one :class:`VideoRecord` per line.

Time is seconds (float) at the edges and integer frame indices inside. ``segments``,
``points`` and ``sentences`` are ``None`` when the dataset does not annotate them at all, and
an empty list when it does but this video has none: ``full`` supervision needs the difference.
Loading validates every field a task needs and names the file, line and field of a problem.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_manifests.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "meta.json"
VIDEOS_FILE = "videos.jsonl"
# Annotations are rounded by annotators to 0.01-0.1 s; a segment that ends a hair past the video
# end is a rounding artefact, not an error.
TIME_TOLERANCE_S = 0.05


class ManifestError(UserError):
    """A manifest (or a source annotation file) has a bad value; names file, line and field."""

    def __init__(self, file: str | Path, line: int | None, field_name: str | None, message: str):
        self.file, self.line, self.field = str(file), line, field_name
        where = self.file + (f":{line}" if line is not None else "")
        what = f" [{field_name}]" if field_name else ""
        super().__init__(f"{where}{what}: {message}")


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds
    end: float  # seconds


@dataclass(frozen=True)
class Point:
    label: str
    time: float  # seconds


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float | None  # seconds; None with end: the moment is not annotated (weak supervision)
    end: float | None  # seconds
    glance: float | None = None  # one timestamp inside [start, end] (glance supervision)


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    path: str | None  # relative to a videos root; None for feature-only use
    split: str
    duration: float  # seconds
    fps: float
    num_frames: int
    labels: tuple[str, ...] = ()  # video-level (weak) labels, sorted, unique
    segments: tuple[Segment, ...] | None = None  # None: dataset has no interval labels
    points: tuple[Point, ...] | None = None
    activity: str | None = None
    sentences: tuple[Sentence, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        # Written out by hand: dataclasses.asdict deep-copies and dominates writing big manifests.
        def many(items: tuple | None, keys: tuple[str, ...]) -> list | None:
            return None if items is None else [{k: getattr(i, k) for k in keys} for i in items]

        return {
            "video_id": self.video_id, "path": self.path, "split": self.split,
            "duration": self.duration, "fps": self.fps, "num_frames": self.num_frames,
            "labels": list(self.labels),
            "segments": many(self.segments, ("label", "start", "end")),
            "points": many(self.points, ("label", "time")),
            "activity": self.activity,
            "sentences": many(self.sentences, ("text", "start", "end", "glance")),
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> VideoRecord:
        def many(key: str, cls: type) -> tuple | None:
            items = obj.get(key)
            return None if items is None else tuple(cls(**item) for item in items)

        return VideoRecord(
            video_id=str(obj["video_id"]),
            path=obj.get("path"),
            split=str(obj["split"]),
            duration=float(obj["duration"]),
            fps=float(obj["fps"]),
            num_frames=int(obj["num_frames"]),
            labels=tuple(obj.get("labels") or ()),
            segments=many("segments", Segment),
            points=many("points", Point),
            activity=obj.get("activity"),
            sentences=many("sentences", Sentence),
        )


@dataclass(frozen=True)
class ManifestMeta:
    dataset: str
    classes: tuple[str, ...]
    activities: tuple[str, ...] = ()
    fps: float = 30.0  # default fps of the dataset's videos
    sources: dict[str, str] = field(default_factory=dict)  # source file name -> sha256
    notes: tuple[str, ...] = ()  # how known quirks of the source files were handled
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True)
class Manifest:
    meta: ManifestMeta
    videos: tuple[VideoRecord, ...]
    root: Path | None = None  # folder it was loaded from

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.meta.classes)}

    def split(self, name: str | None) -> Manifest:
        """The videos of one split (``None`` keeps all)."""
        if name is None:
            return self
        kept = tuple(v for v in self.videos if v.split == name)
        if not kept:
            have = sorted({v.split for v in self.videos})
            raise ManifestError(self.root or "<manifest>", None, "split",
                                f"no video in split {name!r}; splits present: {have}")
        return Manifest(self.meta, kept, self.root)

    def video_path(self, video: VideoRecord, videos_root: str | Path | None = None) -> Path:
        """Absolute path of a video file: ``videos_root`` (default: the manifest folder) / path."""
        if video.path is None:
            raise ManifestError(self.root or "<manifest>", None, "path",
                                f"video {video.video_id!r} has no file (feature-only manifest)")
        root = Path(videos_root) if videos_root is not None else self.root
        if root is None:
            raise ManifestError("<manifest>", None, "path",
                                "relative video paths need --videos-root (manifest not loaded "
                                "from a folder)")
        return (root / video.path).resolve()

    def by_id(self) -> dict[str, VideoRecord]:
        return {v.video_id: v for v in self.videos}

    def sha256(self) -> str:
        """Content hash of the manifest (meta + videos), independent of where it lives."""
        digest = hashlib.sha256()
        digest.update(_dumps(_meta_json(self.meta)).encode())
        for video in self.videos:
            digest.update(_dumps(video.to_json()).encode())
        return digest.hexdigest()

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self.videos)

    def __len__(self) -> int:
        return len(self.videos)


# ---------------------------------------------------------------------------------------------
# Derived targets (never stored twice)


def frame_labels(video: VideoRecord, classes: Sequence[str], fps: float | None = None) -> np.ndarray:
    """Multi-hot frame labels ``(N, K)`` bool at ``fps`` (default: the video's), from segments.

    Frame ``i`` covers time ``i / fps``; it is positive for class k when a k-segment holds it.
    """
    times = np.arange(_frame_count(video, fps)) / (fps or video.fps)
    return labels_at_times(video, classes, times)


def labels_at_times(video: VideoRecord, classes: Sequence[str], times: np.ndarray) -> np.ndarray:
    """Multi-hot ``(len(times), K)`` bool: which classes' segments contain each time (seconds).

    Segments are half-open ``[start, end)``: a frame on the boundary between two consecutive
    segments belongs to the second only, so frame-level labels partition time.
    """
    if video.segments is None:
        raise ManifestError(video.video_id, None, "segments",
                            "this dataset has no interval annotations (segments); "
                            "frame or clip labels need them")
    index = {name: i for i, name in enumerate(classes)}
    out = np.zeros((len(times), len(classes)), dtype=bool)
    for seg in video.segments:
        out[(times >= seg.start) & (times < seg.end), index[seg.label]] = True
    return out


def _frame_count(video: VideoRecord, fps: float | None) -> int:
    return video.num_frames if fps is None else math.floor(video.duration * fps + 1e-9)


# ---------------------------------------------------------------------------------------------
# Reading and writing


def write_manifest(manifest: Manifest | tuple[ManifestMeta, Iterable[VideoRecord]],
                   out_dir: str | Path) -> Path:
    """Validate and write a manifest folder; byte-identical for identical content."""
    meta, videos = (manifest.meta, manifest.videos) if isinstance(manifest, Manifest) else manifest
    videos = tuple(videos)
    out = Path(out_dir)
    validate(meta, videos, source=out / VIDEOS_FILE)
    out.mkdir(parents=True, exist_ok=True)
    tmp_meta, tmp_videos = out / (META_FILE + ".tmp"), out / (VIDEOS_FILE + ".tmp")
    tmp_meta.write_text(_dumps(_meta_json(meta), indent=1) + "\n")
    with tmp_videos.open("w") as fh:
        for video in videos:
            fh.write(_dumps(video.to_json()) + "\n")
    # Renames last, so a crashed writer never leaves a half manifest under the real names.
    tmp_videos.replace(out / VIDEOS_FILE)
    tmp_meta.replace(out / META_FILE)
    return out


def load_manifest(path: str | Path) -> Manifest:
    """Load and validate a manifest folder (or its ``videos.jsonl``/``meta.json``)."""
    root = Path(path)
    if root.is_file():
        root = root.parent
    meta_path, videos_path = root / META_FILE, root / VIDEOS_FILE
    for p in (meta_path, videos_path):
        if not p.exists():
            raise ManifestError(p, None, None, "missing: a manifest folder holds meta.json and "
                                               "videos.jsonl (build one with `weakfeat data build`"
                                               " or `weakfeat data synth`)")
    try:
        raw = json.loads(meta_path.read_text())
        meta = ManifestMeta(
            dataset=raw["dataset"], classes=tuple(raw["classes"]),
            activities=tuple(raw.get("activities", ())), fps=float(raw.get("fps", 30.0)),
            sources=dict(raw.get("sources", {})), notes=tuple(raw.get("notes", ())),
            schema_version=int(raw.get("schema_version", SCHEMA_VERSION)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ManifestError(meta_path, None, None, f"unreadable meta: {exc!r}") from exc
    if meta.schema_version > SCHEMA_VERSION:
        raise ManifestError(meta_path, None, "schema_version",
                            f"{meta.schema_version} is newer than this weakfeat "
                            f"({SCHEMA_VERSION}); upgrade weakfeat")
    videos = []
    with videos_path.open() as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                videos.append(VideoRecord.from_json(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ManifestError(videos_path, line_no, None, f"not JSON: {exc.msg}") from exc
            except (KeyError, TypeError, ValueError) as exc:
                raise ManifestError(videos_path, line_no, None, f"bad record: {exc!r}") from exc
    validate(meta, videos, source=videos_path)
    return Manifest(meta, tuple(videos), root)


def validate(meta: ManifestMeta, videos: Sequence[VideoRecord], source: str | Path) -> None:
    """Raise :class:`ManifestError` for the first bad field (line = 1-based record number)."""
    classes = set(meta.classes)
    if len(classes) != len(meta.classes):
        dupes = sorted({c for c in meta.classes if list(meta.classes).count(c) > 1})
        raise ManifestError(source, None, "classes", f"duplicated class names {dupes}")
    activities = set(meta.activities)
    seen: dict[str, int] = {}
    for line, v in enumerate(videos, start=1):
        def fail(field_name: str, message: str, line: int = line, v: VideoRecord = v) -> None:
            raise ManifestError(source, line, field_name, f"video {v.video_id!r}: {message}")

        if v.video_id in seen:
            fail("video_id", f"duplicated id (first on line {seen[v.video_id]})")
        seen[v.video_id] = line
        if not (v.duration > 0 and math.isfinite(v.duration)):
            fail("duration", f"must be a positive number of seconds, got {v.duration}")
        if not (v.fps > 0 and math.isfinite(v.fps)):
            fail("fps", f"must be positive, got {v.fps}")
        if v.num_frames < 0:
            fail("num_frames", f"must be >= 0, got {v.num_frames}")
        for name in v.labels:
            if name not in classes:
                fail("labels", f"unknown class {name!r}")
        if len(set(v.labels)) != len(v.labels):
            fail("labels", f"duplicated labels {list(v.labels)}")
        end_limit = v.duration + TIME_TOLERANCE_S
        for seg in v.segments or ():
            if seg.label not in classes:
                fail("segments", f"unknown class {seg.label!r}")
            if not seg.end > seg.start:
                fail("segments", f"end <= start: [{seg.start}, {seg.end}] ({seg.label})")
            if seg.start < -TIME_TOLERANCE_S or seg.end > end_limit:
                fail("segments", f"[{seg.start}, {seg.end}] ({seg.label}) lies outside the "
                                 f"video [0, {v.duration}]")
            if seg.label not in v.labels:
                fail("segments", f"segment class {seg.label!r} missing from the video labels")
        for pt in v.points or ():
            if pt.label not in classes:
                fail("points", f"unknown class {pt.label!r}")
            if not -TIME_TOLERANCE_S <= pt.time <= end_limit:
                fail("points", f"time {pt.time} ({pt.label}) outside [0, {v.duration}]")
        if v.activity is not None and v.activity not in activities:
            fail("activity", f"unknown activity {v.activity!r}")
        for sent in v.sentences or ():
            times = {"start": sent.start, "end": sent.end, "glance": sent.glance}
            for name, value in times.items():
                if value is not None and not _is_time(value):
                    fail("sentences", f"{name} {value!r} of {sent.text!r} is not a number of "
                                      "seconds")
            if (sent.start is None) != (sent.end is None):
                fail("sentences", f"{sent.text!r} has only one of start and end "
                                  f"([{sent.start}, {sent.end}]); give both, or neither for a "
                                  "sentence without its moment (weak supervision)")
            low, high = (0.0, v.duration) if sent.start is None else (sent.start, sent.end)
            if sent.start is not None and not sent.end > sent.start:
                fail("sentences", f"end <= start: [{sent.start}, {sent.end}] {sent.text!r}")
            if sent.glance is not None and not low <= sent.glance <= high:
                fail("sentences", f"glance {sent.glance} outside [{low}, {high}]")


def _is_time(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _meta_json(meta: ManifestMeta) -> dict[str, Any]:
    out = asdict(meta)
    for key in ("classes", "activities", "notes"):
        out[key] = list(out[key])
    return out


def _dumps(obj: Any, indent: int | None = None) -> str:
    # sort_keys + fixed separators: the same content always gives the same bytes.
    return json.dumps(obj, sort_keys=True, indent=indent, ensure_ascii=False,
                      separators=(",", ": ") if indent else (",", ":"))
