"""What every converter shares: finding official files, strict parsing, and quirk bookkeeping.

A converter reads the official files exactly as shipped. Anything wrong with them either is a
*known quirk* of the official release, handled in a documented way and counted in
``meta.notes``, or it is an error (:class:`ManifestError`) naming the file, the line and the
value. Items the manifest cannot hold (THUMOS ``Ambiguous`` intervals, intervals that lie
entirely outside their video) are *kept apart*: returned through the ``kept_apart`` list of a
converter's ``build`` and written by :func:`data_manifests.converters.build.build_manifest` to
``kept_apart.jsonl`` beside the manifest, so nothing disappears silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from data_manifests.schema import ManifestError, VideoRecord

log = logging.getLogger(__name__)

KEPT_APART_FILE = "kept_apart.jsonl"
# Annotation tools round interval ends up; an end this far past the video end is such a rounding
# artefact and is clipped. Anything further out is an error unless the video is a listed quirk.
MAX_OVERSHOOT_S = 2.0
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".gif")


@dataclass(frozen=True)
class KeptApart:
    """One annotation that the manifest does not hold, and why (see module docstring)."""

    video_id: str
    split: str | None  # None: the video itself is not in the manifest
    kind: str  # "segment" | "sentence" | "point"
    reason: str  # "ambiguous" | "outside_video" | "zero_length" | "duplicate"
    source: str  # "file:line" of the row it came from
    label: str | None = None
    start: float | None = None  # seconds
    end: float | None = None  # seconds
    text: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Quirks:
    """Counts every changed or set-aside item per kind, keeps one example, renders notes."""

    def __init__(self, dataset: str, root: Path):
        self.dataset = dataset
        # Examples name files relative to the annotation folder: the same files must give the
        # same manifest bytes wherever they live.
        self._prefix = str(Path(root)) + os.sep
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def add(self, what: str, example: str) -> None:
        self.counts[what] += 1
        self.examples.setdefault(what, example.replace(self._prefix, ""))
        log.debug("%s: %s: %s", self.dataset, what, example)

    def notes(self, fixed: Iterable[str] = ()) -> tuple[str, ...]:
        """``fixed`` explanations, then one counted line per quirk kind (also logged)."""
        counted = []
        for what in sorted(self.counts):
            line = f"{what}: {self.counts[what]} (first: {self.examples[what]})"
            log.info("%s: %s", self.dataset, line)
            counted.append(line)
        return (*fixed, *counted)


class SourceFiles:
    """The files under an annotation folder, found by their official names; hashes what is read."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ManifestError(self.root, None, None, "annotation folder not found")
        self._by_name: dict[str, list[Path]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                self._by_name.setdefault(name, []).append(Path(folder) / name)
        self.sha256: dict[str, str] = {}

    def find(self, name: str, *, required: bool = True) -> Path | None:
        """The one file called ``name`` anywhere under the root (None if absent and optional)."""
        hits = self._by_name.get(name, [])
        if len(hits) > 1:
            shown = ", ".join(str(p.relative_to(self.root)) for p in sorted(hits))
            raise ManifestError(self.root, None, None,
                                f"official file {name!r} found more than once: {shown}")
        if not hits:
            if required:
                raise ManifestError(self.root / name, None, None,
                                    f"official file {name!r} not found under {self.root}")
            return None
        return hits[0]

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def read_text(self, path: Path) -> str:
        """Decode one source file as shipped (UTF-8) and record its sha256."""
        data = path.read_bytes()
        self.sha256[self.key(path)] = hashlib.sha256(data).hexdigest()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(path, None, None, f"not UTF-8 text: {exc}") from exc

    def read_json(self, path: Path) -> Any:
        """Parse a JSON source; a key given twice is an error (``json`` keeps the last silently)."""
        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise ManifestError(path, None, key, f"duplicated key {key!r}")
                out[key] = value
            return out

        try:
            return json.loads(self.read_text(path), object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as exc:
            raise ManifestError(path, exc.lineno, None, f"not JSON: {exc.msg}") from exc

    def read_lines(self, path: Path) -> list[str]:
        """Lines without their line ends; ``lines[i]`` is line ``i + 1`` of the file."""
        return self.read_text(path).splitlines()

    def rel(self, where: str) -> str:
        """``where`` ("file:line") with the file relative to the root (stable across machines)."""
        prefix = str(self.root) + os.sep
        return where.removeprefix(prefix)

    def key(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:  # a file passed in from outside the root (e.g. Charades for STA)
            return path.as_posix()


def whitespace_rows(files: SourceFiles, path: Path, form: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a whitespace-separated file, blank lines skipped.

    ``form`` names the fields, e.g. ``"video start end"``; a row with another number of fields
    is an error naming file:line and the row.
    """
    expected = len(form.split())
    for line_no, line in enumerate(files.read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != expected:
            raise ManifestError(path, line_no, None, f"expected '{form}', got {line!r}")
        yield line_no, parts


def read_id_names(files: SourceFiles, path: Path, *, first_id: int) -> tuple[str, ...]:
    """Names in id order from ``<id> <name>`` rows whose ids run ``first_id, first_id + 1, ...``."""
    rows: dict[int, str] = {}
    seen: dict[str, str] = {}
    for line_no, (number, name) in whitespace_rows(files, path, "<id> <name>"):
        check_unique(seen, name, f"{path}:{line_no}", "class")
        rows[parse_int(number, path, line_no, "id")] = name
    expected = list(range(first_id, first_id + len(rows)))
    if sorted(rows) != expected:
        raise ManifestError(path, None, "id",
                            f"ids must be {first_id}..{first_id + len(rows) - 1}, got {sorted(rows)}")
    return tuple(rows[i] for i in expected)


def error_at(where: str, field: str | None, message: str) -> ManifestError:
    """A :class:`ManifestError` for a ``"file:line"`` place (or ``"file:item"`` for JSON)."""
    path, _, line = where.rpartition(":")
    if line.isdigit():
        return ManifestError(path, int(line), field, message)
    return ManifestError(where, None, field, message)


def parse_float(value: str, path: Path, line: int, field: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise ManifestError(path, line, field, f"not a number: {value!r}") from None
    if not math.isfinite(out):
        raise ManifestError(path, line, field, f"not a finite number: {value!r}")
    return out


def parse_int(value: str, path: Path, line: int, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ManifestError(path, line, field, f"not an integer: {value!r}") from None


def fit_interval(start: float, end: float, duration: float, *, where: str, what: str,
                 known_outside: bool, quirks: Quirks) -> tuple[float, float] | None:
    """Check ``[start, end]`` (s) against a video of ``duration`` s.

    Returns the interval, with an end up to :data:`MAX_OVERSHOOT_S` past the video end clipped
    (counted), or None when it lies outside the video and ``known_outside`` says that this
    video is a listed quirk of the official files (the caller keeps it apart). Otherwise an
    interval outside the video is an error naming ``where`` (file:line) and the value.
    """
    if start < 0:
        raise error_at(where, "start", f"{what}: negative start {start}")
    inside = start < duration and end <= duration + MAX_OVERSHOOT_S
    if not inside:
        if known_outside:
            return None
        raise error_at(where, "end",
                       f"{what}: [{start}, {end}] lies outside the video [0, {duration}]")
    if end > duration:
        quirks.add("interval ends past the video end, clipped to the video length",
                   f"{where} {what} end {end} > {duration}")
        end = duration
    return start, end


def check_unique(seen: dict[str, str], key: str, where: str, what: str) -> None:
    """Raise when ``key`` was already seen (names both places)."""
    if key in seen:
        raise error_at(where, what, f"duplicated {what} {key!r} (first at {seen[key]})")
    seen[key] = where


def resolve_paths(videos: list[VideoRecord], videos_root: Path | None,
                  quirks: Quirks) -> list[VideoRecord]:
    """Point each ``path`` at the file that exists under ``videos_root``.

    Without a root the dataset's usual naming stays. With one, a video whose usual file is
    missing but which exists as ``<same stem>.<other video extension>`` in the same folder
    (ActivityNet downloads mix .mp4/.mkv/.webm) gets that path; still-missing files are left
    for ``weakfeat data validate`` to report.
    """
    if videos_root is None:
        return videos
    root = Path(videos_root)
    out = []
    for video in videos:
        if video.path is None or (root / video.path).exists():
            out.append(video)
            continue
        usual = Path(video.path)
        for ext in VIDEO_EXTENSIONS:
            other = usual.with_suffix(ext)
            if (root / other).exists():
                quirks.add("video found under --videos-root with another extension",
                           f"{video.video_id}: {other.as_posix()}")
                video = replace(video, path=other.as_posix())
                break
        out.append(video)
    return out


def split_order(split: str) -> tuple[int, str]:
    """Sort key that lists videos train, val, test (then any other split by name)."""
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), split)


def num_frames_at(duration: float, fps: float) -> int:
    """Frames of a ``duration`` s video at ``fps`` when the files do not give the count."""
    return math.floor(duration * fps + 1e-6)
