"""Charades-STA (Gao et al. 2017, TALL): sentence grounding on Charades videos.

Official files: ``charades_sta_{train,test}.txt``, rows ``<vid> <start> <end>##<sentence>``
(seconds). Video lengths come from the Charades CSVs (``Charades_v1_{train,test}.csv``), found
under the folder, in a sibling ``charades/`` folder, or passed as ``charades_dir``. The optional
``glance_charades_train.json`` (D3G) adds one glance timestamp per train sentence.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_manifests.converters import charades
from data_manifests.converters.common import (
    KeptApart,
    Quirks,
    SourceFiles,
    error_at,
    fit_interval,
    num_frames_at,
    parse_float,
    resolve_paths,
    split_order,
)
from data_manifests.schema import ManifestError, ManifestMeta, Sentence, VideoRecord

SPLIT_FILES = {"train": "charades_sta_train.txt", "test": "charades_sta_test.txt"}
GLANCE_FILE = "glance_charades_train.json"
FPS = charades.FPS
# Known quirks (from the Charades train CSV): sentences of these videos with start > end are
# swapped; those that then lie outside the video are kept apart (kept_apart.jsonl).
KNOWN_REVERSED = charades.KNOWN_REVERSED


def build(annotations_dir: Path, *, videos_root: Path | None = None,
          charades_dir: Path | None = None,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """Charades-STA manifest: "train" (12,408 sentences) and "test" (3,720 sentences)."""
    files = SourceFiles(annotations_dir)
    quirks = Quirks("charades-sta", files.root)
    lengths, length_notes, length_sources = _lengths(files, charades_dir)
    glances = _glances(files)
    rows: dict[str, list[tuple[Sentence, str]]] = {}
    split_of: dict[str, tuple[str, str]] = {}
    aside: list[KeptApart] = []
    for split, name in SPLIT_FILES.items():
        path = files.find(name)
        for line_no, line in enumerate(files.read_lines(path), start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            head, sep, text = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3 or not text.strip():
                raise error_at(where, None, f"expected '<vid> <start> <end>##<sentence>', "
                                            f"got {line!r}")
            video_id = parts[0]
            start = parse_float(parts[1], path, line_no, "start")
            end = parse_float(parts[2], path, line_no, "end")
            if split_of.setdefault(video_id, (split, where))[0] != split:
                raise error_at(where, "video", f"video {video_id!r} is in both splits "
                                               f"(first at {split_of[video_id][1]})")
            if end <= start:
                if video_id not in KNOWN_REVERSED:
                    raise error_at(where, "end", f"{video_id}: end <= start: [{start}, {end}]")
                quirks.add("sentence with start > end (known quirk), start and end swapped",
                           f"{where} {video_id} [{start}, {end}]")
                start, end = end, start
            if video_id in lengths:
                fitted = fit_interval(start, end, lengths[video_id], where=where, what=video_id,
                                      known_outside=video_id in KNOWN_REVERSED, quirks=quirks)
                if fitted is None:
                    quirks.add("sentence outside the video after swapping, kept apart "
                               "(kept_apart.jsonl)",
                               f"{where} {video_id} [{start}, {end}] (length {lengths[video_id]})")
                    aside.append(KeptApart(video_id, split, "sentence", "outside_video",
                                           files.rel(where), None, start, end, text))
                    rows.setdefault(video_id, [])
                    continue
                start, end = fitted
            glance = glances.get((video_id, text, start))
            if glance is not None and not start <= glance <= end:
                quirks.add("glance outside its (clipped) sentence, moved to the nearest end",
                           f"{where} {video_id} glance {glance} [{start}, {end}]")
                glance = min(max(glance, start), end)
            rows.setdefault(video_id, []).append((Sentence(text, start, end, glance), where))
    no_glance = sum(s.glance is None for v, items in rows.items() for s, _ in items
                    if split_of[v][0] == "train")
    videos = []
    for video_id in sorted(rows, key=lambda v: (split_order(split_of[v][0]), v)):
        sentences = tuple(s for s, _ in rows[video_id])
        duration = lengths.get(video_id)
        if duration is None:
            duration = max(s.end for s in sentences)
            quirks.add("video without a Charades length, duration = last sentence end",
                       video_id)
        videos.append(VideoRecord(
            video_id=video_id, path=f"{video_id}.mp4", split=split_of[video_id][0],
            duration=duration, fps=FPS, num_frames=num_frames_at(duration, FPS),
            sentences=sentences))
    videos = resolve_paths(videos, videos_root, quirks)
    if kept_apart is not None:
        kept_apart.extend(sorted(aside, key=lambda k: (k.split or "", k.video_id, k.source)))
    notes = quirks.notes([
        ("splits: train = charades_sta_train.txt, test = charades_sta_test.txt; sentences in "
         "file order"),
        *length_notes,
        f"glance: {GLANCE_FILE} (D3G), matched by video, sentence and start; train "
        f"sentences without one (glance null): {no_glance}; test sentences: null"
        if glances else "glance: null (no glance file)",
        "labels/segments: not carried (build the charades manifest for them)",
    ])
    sources = {**dict(sorted(files.sha256.items())), **length_sources}
    meta = ManifestMeta(dataset="charades-sta", classes=(), fps=FPS, sources=sources,
                        notes=notes)
    return meta, videos


def _lengths(files: SourceFiles, charades_dir: Path | None
             ) -> tuple[dict[str, float], list[str], dict[str, str]]:
    """Charades lengths, the note saying where they came from, and those files' sha256."""
    if charades_dir is None:
        if files.find(charades.SPLIT_FILES["train"], required=False):
            charades_dir = files.root
        elif (files.root.parent / "charades").is_dir():
            charades_dir = files.root.parent / "charades"
    if charades_dir is None:
        return {}, [("durations: Charades CSVs not found; duration = the video's last "
                    "sentence end (a lower bound)")], {}
    source = SourceFiles(Path(charades_dir))
    lengths = {video_id: length for video_id, (_, length) in charades.read_lengths(source).items()}
    where = os.path.relpath(source.root, files.root)
    sources = {(Path(where) / key).as_posix(): sha for key, sha in source.sha256.items()}
    return lengths, [(f"durations: 'length' of Charades_v1_{{train,test}}.csv in {where}; "
                     f"fps {FPS} (the official frame release rate)")], sources


def _glances(files: SourceFiles) -> dict[tuple[str, str, float], float]:
    """``(video, sentence, start) -> glance`` (s) from the optional D3G file."""
    path = files.find(GLANCE_FILE, required=False)
    if path is None:
        return {}
    raw = files.read_json(path)
    try:
        out = {}
        for video_id, item in raw.items():
            for (start, _), text, glance in zip(item["timestamps"], item["sentences"],
                                                item["glances"], strict=True):
                out[(video_id, text, float(start))] = float(glance)
        return out
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ManifestError(path, None, None, f"unexpected layout: {exc!r}") from exc
