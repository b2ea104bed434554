"""The export's clip grid and sharding rules, without torch (the dry run plans with them).

A video of ``num_frames`` frames is cut into clips of F frames tau apart, starting every
``step`` frames; every clip starts inside the video and the last one may run past the end (the
reader pads by repeating the last frame). A shard ``i/N`` owns the videos whose id hashes to i.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from data_manifests.errors import UserError


class ShardError(UserError):
    """A job array's SLURM variables do not describe a shard."""


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


def shard_index(video_id: str, count: int) -> int:
    """The shard (of ``count``) that owns ``video_id``: a hash of the id, stable when the
    manifest grows."""
    digest = hashlib.sha256(video_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def in_shard(video_id: str, shard: tuple[int, int]) -> bool:
    """Deterministic partition by a hash of the id: stable when the manifest grows."""
    return shard_index(video_id, shard[1]) == shard[0]


def shard_from_environment(env: Mapping[str, str]) -> tuple[int, int] | None:
    """This SLURM array task's shard, ``(ID - MIN) / STEP`` of ``COUNT``; None outside an array.

    ``--array=0-7`` and ``--array=8-15`` both give shards 0..7 of 8 (``--array=0-14:2`` too);
    an array with holes (``--array=0,2,5``) is refused, since some shard would never run.
    """
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None

    def number(name: str, default: int | None = None) -> int:
        text = env.get(name)
        if text is None or not text.strip():
            if default is None:
                raise ShardError(f"SLURM_ARRAY_TASK_ID is set but {name} is not: cannot tell "
                                 "the shard (give --shard i/N)")
            return default
        try:
            return int(text)
        except ValueError:
            raise ShardError(f"{name}={text!r} is not an integer (give --shard i/N)") from None

    task_id, count = number("SLURM_ARRAY_TASK_ID"), number("SLURM_ARRAY_TASK_COUNT")
    low, step = number("SLURM_ARRAY_TASK_MIN", 0), number("SLURM_ARRAY_TASK_STEP", 1)
    if count < 1:
        raise ShardError(f"SLURM_ARRAY_TASK_COUNT={count} must be >= 1")
    if step < 1:
        raise ShardError(f"SLURM_ARRAY_TASK_STEP={step} must be >= 1")
    offset = task_id - low
    if offset < 0 or offset % step:
        raise ShardError(f"SLURM_ARRAY_TASK_ID={task_id} is not SLURM_ARRAY_TASK_MIN={low} "
                         f"plus a multiple of SLURM_ARRAY_TASK_STEP={step}")
    index = offset // step
    if index >= count:
        raise ShardError(f"SLURM_ARRAY_TASK_ID={task_id} gives shard {index} but "
                         f"SLURM_ARRAY_TASK_COUNT={count} (SLURM_ARRAY_TASK_MIN={low}): use a "
                         f"contiguous --array such as 0-{count - 1}, or give --shard i/N")
    if "SLURM_ARRAY_TASK_MAX" in env:
        high = number("SLURM_ARRAY_TASK_MAX")
        if high - low != (count - 1) * step:
            raise ShardError(f"SLURM_ARRAY_TASK_MAX={high} with SLURM_ARRAY_TASK_MIN={low} and "
                             f"SLURM_ARRAY_TASK_COUNT={count}: the array has holes, so some "
                             "shard would never run; use a contiguous --array such as "
                             f"0-{count - 1}")
    return index, count
