"""Clips trimmed from long videos: where they lie, what their labels are, and a Dataset.

A clip is ``F`` frames with stride ``tau`` from a start frame ``s``: frames s, s + tau, ...,
s + (F - 1) tau. A video shorter than one clip is padded by repeating its last frame (the
video reader repeats the last frame for indices past the end), so every clip has F frames.

Determinism (exact resume, DDP): a clip's start and its random crop depend only on
(seed, epoch, video index), and the order of videos only on (seed, epoch). Nothing about the
sampler has to be saved beyond the step counter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from data_manifests.schema import Manifest, ManifestError, VideoRecord

# (video, frame indices) -> uint8 (C, T, H, W)
FrameReader = Callable[[VideoRecord, Sequence[int]], Tensor]
# (uint8 (C, T, H, W), random generator) -> float (C, T, H', W')
ClipTransform = Callable[[Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class ClipGeometry:
    num_frames: int  # F
    stride: int  # tau

    @property
    def span(self) -> int:
        """Frames from the first sampled frame to one past the last: (F - 1) tau + 1."""
        return (self.num_frames - 1) * self.stride + 1

    def indices(self, start: int) -> list[int]:
        return [start + i * self.stride for i in range(self.num_frames)]

    def max_start(self, video: VideoRecord) -> int:
        return max(0, video.num_frames - self.span)

    def centre_time(self, start: int, fps: float) -> float:
        """Seconds at the clip centre."""
        return (start + (self.span - 1) / 2) / fps

    def interval(self, start: int, fps: float) -> tuple[float, float]:
        """[start, end) seconds covered by the clip."""
        return start / fps, (start + self.span) / fps

    def evenly_spaced_starts(self, video: VideoRecord, count: int) -> list[int]:
        """``count`` start frames spread evenly over the video (test views, Eq. 2 inference)."""
        last = self.max_start(video)
        if count == 1:
            return [last // 2]
        return [round(i * last / (count - 1)) for i in range(count)]


def video_targets(video: VideoRecord, class_index: dict[str, int]) -> Tensor:
    """Multi-hot video-level labels (K,) float."""
    y = torch.zeros(len(class_index))
    for label in video.labels:
        y[class_index[label]] = 1.0
    return y


def clip_targets(video: VideoRecord, class_index: dict[str, int], start_s: float,
                 end_s: float, *, source: str = "<manifest>") -> Tensor:
    """`full` labels (K,): classes whose annotated intervals overlap [start_s, end_s)."""
    if video.segments is None:
        raise ManifestError(source, None, "segments",
                            f"video {video.video_id!r} has no interval annotations; mode 'full' "
                            "needs segments (use mode 'noisy' or 'adaptfocus' for video labels)")
    y = torch.zeros(len(class_index))
    for seg in video.segments:
        if seg.start < end_s and seg.end > start_s:
            y[class_index[seg.label]] = 1.0
    return y


def require_segments(manifest: Manifest) -> None:
    """Fail before training when `full` mode meets a manifest without interval labels."""
    missing = [v.video_id for v in manifest.videos if v.segments is None]
    if missing:
        raise ManifestError(manifest.root or "<manifest>", None, "segments",
                            f"mode 'full' needs interval annotations (segments) but "
                            f"{len(missing)} video(s) have none, e.g. {missing[:3]}")


def epoch_order(num_videos: int, *, seed: int, epoch: int) -> list[int]:
    """The shuffled video order of one epoch (identical on every rank)."""
    generator = torch.Generator().manual_seed(_mix(seed, epoch, 0x5EED))
    return torch.randperm(num_videos, generator=generator).tolist()


def _mix(*parts: int) -> int:
    """A 63-bit seed from a few integers (stable across processes, unlike hash())."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 63)
    return value


class TrainClips(Dataset):
    """Item ``(epoch, video_index)`` -> one random clip of that video with its labels.

    Returns a dict: ``clip`` float (C, F, H, W); ``video_index`` long; ``time`` clip centre
    (s); ``duration`` (s); ``video_labels`` (K,); ``clip_labels`` (K,) (`full` mode only,
    else equal to ``video_labels``).
    """

    def __init__(self, manifest: Manifest, *, geometry: ClipGeometry, read: FrameReader,
                 transform: ClipTransform, seed: int, need_clip_labels: bool):
        self.videos = manifest.videos
        self.class_index = manifest.class_index
        self.geometry = geometry
        self.read = read
        self.transform = transform
        self.seed = seed
        self.need_clip_labels = need_clip_labels
        self.source = str(manifest.root or "<manifest>")

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = item
        video = self.videos[index]
        rng = np.random.default_rng(_mix(self.seed, epoch, index))
        start = int(rng.integers(0, self.geometry.max_start(video) + 1))
        frames = self.read(video, self.geometry.indices(start))
        # The crop's randomness comes from the same seed, whatever process reads the clip.
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch, index, 1))
        clip = self.transform(frames, generator)
        y_video = video_targets(video, self.class_index)
        if self.need_clip_labels:
            lo, hi = self.geometry.interval(start, video.fps)
            y_clip = clip_targets(video, self.class_index, lo, hi, source=self.source)
        else:
            y_clip = y_video
        return {"clip": clip, "video_index": torch.tensor(index),
                "time": torch.tensor(self.geometry.centre_time(start, video.fps),
                                     dtype=torch.float64),
                "duration": torch.tensor(max(video.duration, 1e-6), dtype=torch.float64),
                "video_labels": y_video, "clip_labels": y_clip}


class EpochBatches(torch.utils.data.Sampler):
    """Batches of (epoch, video_index) from ``first_step`` on; each rank takes its share.

    Every epoch is ``steps_per_epoch`` batches of ``batch_size`` per rank; the tail of an
    epoch's order that does not fill a batch on every rank is dropped (same count everywhere,
    which DDP needs).
    """

    def __init__(self, num_videos: int, *, batch_size: int, seed: int, epochs: int,
                 first_step: int = 0, rank: int = 0, world_size: int = 1):
        self.num_videos, self.batch_size, self.seed = num_videos, batch_size, seed
        self.epochs, self.first_step = epochs, first_step
        self.rank, self.world_size = rank, world_size

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.num_videos, self.batch_size, self.world_size)

    def __len__(self) -> int:
        return self.epochs * self.steps_per_epoch - self.first_step

    def __iter__(self):
        per_epoch = self.steps_per_epoch
        for step in range(self.first_step, self.epochs * per_epoch):
            epoch, within = divmod(step, per_epoch)
            order = epoch_order(self.num_videos, seed=self.seed, epoch=epoch)
            mine = order[self.rank::self.world_size]
            batch = mine[within * self.batch_size:(within + 1) * self.batch_size]
            yield [(epoch, index) for index in batch]


def steps_per_epoch(num_videos: int, batch_size: int, world_size: int = 1) -> int:
    per_rank = num_videos // world_size
    if per_rank == 0:
        raise ValueError(f"{num_videos} training videos cannot be shared by {world_size} processes")
    return max(1, per_rank // batch_size) if per_rank >= batch_size else 1


def effective_spec(spec, *, num_frames: int | None, frame_stride: int | None,
                   crop_size: int | None, short_side: int | None):
    """The backbone's input spec with the config's overrides applied."""
    changes = {name: value for name, value in (("num_frames", num_frames),
                                               ("frame_stride", frame_stride),
                                               ("crop_size", crop_size),
                                               ("short_side", short_side)) if value is not None}
    return dataclasses.replace(spec, **changes)
