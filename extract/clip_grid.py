"""The export's clip grid and sharding rules, without torch (the dry run plans with them).

A video of ``num_frames`` frames is cut into clips of F frames tau apart, starting every
``step`` frames; every clip starts inside the video and the last one may run past the end (the
reader pads by repeating the last frame). A shard ``i/N`` owns the videos whose id hashes to i.
"""

from __future__ import annotations

import hashlib
import math


def clip_count(num_frames: int, clip_frames: int, frame_stride: int, step: int) -> int:
    """Clips cut from a ``num_frames`` video: enough to cover it, each starting inside it."""
    span = (clip_frames - 1) * frame_stride + 1
    count = 1 + math.ceil(max(0, num_frames - span) / step)
    return min(count, 1 + (num_frames - 1) // step)


def parse_clip(text: str) -> tuple[int, int]:
    """``"16x1"`` -> (16, 1)."""
    try:
        frames, stride = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--clip must look like FxTAU (e.g. 16x1), got {text!r}") from None
    if min(frames, stride) < 1:
        raise ValueError(f"--clip {text}: F and TAU must be positive")
    return frames, stride


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < N")
    return index, count


def in_shard(video_id: str, shard: tuple[int, int]) -> bool:
    """Deterministic partition by a hash of the id: stable when the manifest grows."""
    digest = hashlib.sha256(video_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]
