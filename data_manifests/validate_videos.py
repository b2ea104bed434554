"""Check that every video a manifest names exists, decodes, and has the manifest's duration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_manifests.schema import Manifest, ManifestError

log = logging.getLogger(__name__)

# Containers and annotation files round durations differently (frame vs packet ends, 0.01 s
# annotation precision); half a second apart is still the same video.
DURATION_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class Problem:
    video_id: str
    path: str  # the file that was checked ("" when the manifest gives none)
    kind: str  # "missing" | "unreadable" | "duration"
    message: str

    def __str__(self) -> str:
        return f"{self.video_id}: {self.kind}: {self.message}"


def validate_videos(manifest: Manifest, videos_root: str | Path | None = None, *,
                    tolerance_s: float = DURATION_TOLERANCE_S,
                    decode: bool = True) -> list[Problem]:
    """Every problem of every video, in manifest order (an empty list means all is well).

    A video is missing (no file), unreadable (probe or decoding its first and last frame
    fails) or off in duration (``|probed - manifest| > tolerance_s`` seconds). Records with
    ``path = null`` (feature-only) reference no file and are skipped.
    """
    # Imported here: video decoding pulls in torch, which `weakfeat data --help` should not pay for.
    from data_manifests.video_reader import VideoReadError, probe_video, read_frames

    problems: list[Problem] = []
    for video in tqdm(manifest.videos, desc="validate videos", unit="video", leave=False):
        if video.path is None:  # feature-only record: references no file
            continue
        try:
            path = manifest.video_path(video, videos_root)
        except ManifestError as exc:
            problems.append(Problem(video.video_id, "", "missing", str(exc)))
            continue
        if not path.exists():
            problems.append(Problem(video.video_id, str(path), "missing", f"no file {path}"))
            continue
        try:
            info = probe_video(path)
            if decode:
                read_frames(path, [0, max(info.num_frames - 1, 0)])
        except (VideoReadError, ValueError) as exc:
            problems.append(Problem(video.video_id, str(path), "unreadable", str(exc)))
            continue
        if abs(info.duration - video.duration) > tolerance_s:
            problems.append(Problem(
                video.video_id, str(path), "duration",
                f"{path}: file lasts {info.duration:.3f} s, manifest says {video.duration:.3f} s "
                f"(tolerance {tolerance_s} s)"))
    for problem in problems:
        log.warning("%s", problem)
    return problems


def summarize(problems: list[Problem], total: int) -> str:
    """One line per problem, then counts per kind."""
    if not problems:
        return f"all {total} videos ok"
    kinds: dict[str, int] = {}
    for problem in problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
    bad = len({p.video_id for p in problems})
    return "\n".join([*map(str, problems), f"{bad} of {total} videos have problems ({counts})"])
