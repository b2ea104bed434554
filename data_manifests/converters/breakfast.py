"""Breakfast Actions (Kuehne et al. 2014) from the MS-TCN release: 15 fps frame-level labels.

Official files: ``mapping.txt`` (``<id> <action>``, 48 classes including ``SIL``),
``splits/{train,test}.split{1..4}.bundle`` (one ground-truth file name per line) and
``groundTruth/<video>.txt`` (one action name per frame, 15 fps). Runs of equal frame labels
become segments; the complex activity is the file-name suffix (``P03_cam01_P03_cereals`` ->
``cereals``). The four splits are leave-people-out folds; ``split_index`` picks one.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from data_manifests.converters.common import (
    KeptApart,
    Quirks,
    SourceFiles,
    check_unique,
    error_at,
    read_id_names,
    resolve_paths,
    split_order,
)
from data_manifests.schema import ManifestError, ManifestMeta, Segment, VideoRecord

MAPPING_FILE = "mapping.txt"
BUNDLE = "{split}.split{index}.bundle"
SPLITS = ("train", "test")
FPS = 15.0  # the frame labels and the released videos (BreakfastII_15fps_qvga_sync) are 15 fps
NAME = re.compile(r"^(P\d+)_([a-z]+\d*)_P\d+_([a-z]+)$")  # person, camera, activity


def read_mapping(files: SourceFiles) -> tuple[str, ...]:
    """The 48 action classes in id order (``<id> <action>`` rows, ids 0..47)."""
    return read_id_names(files, files.find(MAPPING_FILE), first_id=0)


def frames_to_segments(labels: list[str], fps: float) -> list[Segment]:
    """Runs of equal per-frame labels -> segments; frame ``i`` covers ``[i/fps, (i+1)/fps)`` s."""
    segments, first = [], 0
    for label, run in itertools.groupby(labels):
        count = len(list(run))
        segments.append(Segment(label, first / fps, (first + count) / fps))
        first += count
    return segments


def video_path(video_id: str) -> str:
    """Path in the Breakfast video release: ``P03/cam01/P03_cereals.avi``.

    The stereo camera's files hold two channels (``P03/stereo/P03_cereals_ch0.avi``, ``_ch1``);
    ``stereo01`` is taken to be channel 1 (unverified here: no videos are available).
    """
    person, camera, activity = NAME.match(video_id).groups()  # type: ignore[union-attr]
    if camera.startswith("stereo"):
        return f"{person}/stereo/{person}_{activity}_ch{int(camera[len('stereo'):])}.avi"
    return f"{person}/{camera}/{person}_{activity}.avi"


def build(annotations_dir: Path, *, videos_root: Path | None = None, split_index: int = 1,
          kept_apart: list[KeptApart] | None = None) -> tuple[ManifestMeta, list[VideoRecord]]:
    """Breakfast manifest for one of the 4 official splits ("train"/"test"): 1,712 videos."""
    if split_index not in (1, 2, 3, 4):
        raise ValueError(f"breakfast split_index must be 1, 2, 3 or 4, got {split_index}")
    files = SourceFiles(annotations_dir)
    quirks = Quirks("breakfast", files.root)
    classes = read_mapping(files)
    known = set(classes)
    videos: list[VideoRecord] = []
    seen: dict[str, str] = {}
    for split in SPLITS:
        bundle = files.find(BUNDLE.format(split=split, index=split_index))
        for line_no, line in enumerate(files.read_lines(bundle), start=1):
            name = line.strip()
            if not name:
                continue
            where = f"{bundle}:{line_no}"
            check_unique(seen, name, where, "video")
            video_id = name.removesuffix(".txt")
            if not NAME.match(video_id):
                raise error_at(where, "video", f"expected P<person>_<camera>_P<person>_"
                                               f"<activity>.txt, got {name!r}")
            gt_path = files.find(name, required=False)
            if gt_path is None:
                raise error_at(where, "video", f"ground-truth file {name!r} not found")
            frame_labels = files.read_lines(gt_path)
            while frame_labels and not frame_labels[-1].strip():
                frame_labels.pop()  # a trailing blank line is a file ending, not a frame
            if not frame_labels:
                raise ManifestError(gt_path, None, None, "no frame labels")
            unknown = set(frame_labels) - known
            if unknown:
                line = min(frame_labels.index(label) for label in unknown)
                raise ManifestError(gt_path, line + 1, "label", f"unknown action "
                                    f"{frame_labels[line]!r} (not in {MAPPING_FILE})")
            segments = frames_to_segments(frame_labels, FPS)
            videos.append(VideoRecord(
                video_id=video_id, path=video_path(video_id), split=split,
                duration=len(frame_labels) / FPS, fps=FPS, num_frames=len(frame_labels),
                labels=tuple(sorted({s.label for s in segments})), segments=tuple(segments),
                activity=NAME.match(video_id).group(3)))  # type: ignore[union-attr]
    listed = {v.video_id + ".txt" for v in videos}
    for name in files.names():
        path = files.find(name)
        if path is not None and path.parent.name == "groundTruth" and name not in listed:
            quirks.add(f"ground-truth file in no split-{split_index} bundle, left out", name)
    videos.sort(key=lambda v: (split_order(v.split), v.video_id))
    videos = resolve_paths(videos, videos_root, quirks)
    activities = tuple(sorted({v.activity for v in videos if v.activity}))
    notes = quirks.notes([
        (f"split {split_index} of 4 (train/test.split{split_index}.bundle); the other splits: "
         "`weakfeat data build breakfast --split-index N` or build(..., split_index=N)"),
        (f"segments: runs of equal labels in the {FPS:g} fps groundTruth files, frame i covers "
         f"[i/{FPS:g}, (i+1)/{FPS:g}) s; duration = frames / {FPS:g}"),
        "SIL (background) is one of the 48 classes, as in mapping.txt",
        "activity: the ground-truth file-name suffix (10 complex activities)",
        "path: <P>/<camera>/<P>_<activity>.avi; stereo01 -> <P>/stereo/<P>_<activity>_ch1.avi",
    ])
    meta = ManifestMeta(dataset="breakfast", classes=classes, activities=activities, fps=FPS,
                        sources=dict(sorted(files.sha256.items())), notes=notes)
    return meta, videos
