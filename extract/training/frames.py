"""Where training clips' frames come from: the video files, or every video decoded once into RAM.

Both readers map (video, frame indices) -> uint8 (C, T, H, W) with the video reader's padding
rule (indices past the end repeat the last frame). The cache exists for small datasets such as
the synthetic presets: at 32 px a random-access read decodes a whole GOP per clip, which costs
more than the tiny backbone's forward pass, so a CPU run is decode-bound without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from data_manifests.errors import UserError
from data_manifests.schema import Manifest, VideoRecord

log = logging.getLogger(__name__)


class FrameCacheTooLarge(UserError, MemoryError):
    """The frame cache was refused before decoding: the dataset would not fit in RAM."""


class StreamingFrames:
    """Decodes the requested frames from the video file on every call."""

    def __init__(self, manifest: Manifest, videos_root: str | None):
        self.manifest = manifest
        self.videos_root = videos_root

    def __call__(self, video: VideoRecord, indices: Sequence[int]) -> Tensor:
        from data_manifests.video_reader import read_frames

        return read_frames(self.manifest.video_path(video, self.videos_root), list(indices))


class CachedFrames:
    """Decodes every video of ``manifest`` once and answers reads from memory.

    Refuses (before decoding) when the frames would take more than ``max_fraction`` of the
    machine's physical memory; DataLoader workers forked later share the arrays copy-on-write.
    """

    def __init__(self, manifest: Manifest, videos_root: str | None, *, max_fraction: float = 0.5,
                 progress: bool = True):
        from data_manifests.video_reader import iter_frames, probe_video

        videos = manifest.videos
        if not videos:
            self.frames: dict[str, np.ndarray] = {}
            return
        first = probe_video(manifest.video_path(videos[0], videos_root))
        needed = sum(v.num_frames for v in videos) * first.width * first.height * 3
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if needed > max_fraction * available:
            raise FrameCacheTooLarge(
                f"{manifest.root}: caching {len(videos)} videos needs about {needed / 2**30:.1f} "
                f"GiB, more than {max_fraction:.0%} of this machine's {available / 2**30:.1f} GiB;"
                " set data.cache_frames=false to stream from the files")
        self.frames = {}
        for video in tqdm(videos, desc="cache frames", disable=not progress, dynamic_ncols=True):
            path = manifest.video_path(video, videos_root)
            self.frames[video.video_id] = np.stack(list(iter_frames(path)))  # (T, H, W, C)
        log.info("cached %d videos, %.2f GiB", len(videos),
                 sum(a.nbytes for a in self.frames.values()) / 2**30)

    def __call__(self, video: VideoRecord, indices: Sequence[int]) -> Tensor:
        frames = self.frames[video.video_id]
        wanted = np.asarray(list(indices), dtype=np.int64)
        if wanted.size == 0 or wanted.min() < 0:
            raise ValueError(f"{video.video_id}: frame indices must be non-negative and non-empty")
        picked = frames[np.minimum(wanted, len(frames) - 1)]  # (T, H, W, C)
        return torch.from_numpy(picked).permute(3, 0, 1, 2).contiguous()  # (C, T, H, W)
