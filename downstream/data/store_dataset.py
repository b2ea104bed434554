"""The store-backed dataset every stage-2 task shares: manifest + feature store -> items.

An item is one video (localization, segmentation, complex activity recognition) or one sentence
of a video (grounding): the store's ``(T, D)`` features and ``(T,)`` clip-centre timestamps of
its video, plus the task's targets at that grid. A task subclasses :class:`StoreDataset` and
overrides two hooks: :meth:`~StoreDataset.item_keys` (which items a video gives) and
:meth:`~StoreDataset.targets` (what each item is trained on). The rest is here once: the
checks that the store holds every video and the manifest every annotation the method needs
(before any work starts, naming the videos), the feature cache, windowing of long videos, and
padding into batches (:meth:`~StoreDataset.collate`).

This module reads stores only through ``extract.store`` (downstream never decodes video).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from data_manifests.errors import UserError
from data_manifests.schema import Manifest, VideoRecord

log = logging.getLogger(__name__)


class DataError(UserError):
    """A store and a manifest do not fit together (names the store, the ids or the values)."""


class FeatureReader(Protocol):
    """The part of ``extract.store.FeatureStore`` this module uses (CONTRACTS F)."""

    dim: int

    def video_ids(self) -> list[str]: ...
    def read_features(self, video_id: str) -> np.ndarray: ...
    def read_timestamps(self, video_id: str) -> np.ndarray: ...


# What each annotation a method can train on means for one video of the manifest: the test is
# true when the video has it. A manifest lacking it for any video is refused up front.
ANNOTATIONS: dict[str, Callable[[VideoRecord], bool]] = {
    # interval labels (None: the dataset has none; an empty list is "no action here")
    "segments": lambda v: v.segments is not None,
    # one point per instance; a video without actions needs none
    "points": lambda v: v.points is not None and (not v.labels or bool(v.points)),
    # the set of actions in the video (set supervision)
    "labels": lambda v: bool(v.labels),
    "activity": lambda v: v.activity is not None,
    "sentences": lambda v: bool(v.sentences),
    # one glance timestamp per sentence
    "glances": lambda v: bool(v.sentences) and all(s.glance is not None for s in v.sentences),
    # the moment (start < end, finite seconds) of every sentence: full grounding supervision
    "moments": lambda v: bool(v.sentences) and all(_is_moment(s.start, s.end) for s in v.sentences),
}


def _is_moment(start: Any, end: Any) -> bool:
    return (isinstance(start, (int, float)) and isinstance(end, (int, float))
            and bool(np.isfinite(start) and np.isfinite(end)) and end > start)


@dataclass(frozen=True)
class Item:
    key: Hashable  # the item's id: the video id, or (video id, sentence index)
    video_id: str
    features: torch.Tensor  # (T, D) float32
    timestamps: np.ndarray  # (T,) float64, clip-centre seconds
    offset: int  # index of the first snippet of this item inside the whole video
    targets: dict[str, Any]  # the task's targets (see StoreDataset.targets)


def open_features(path: Any) -> FeatureReader:
    """Open a store path read-only (``extract.store.open_store``); objects pass through."""
    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        return path  # already a reader (tests pass small in-memory stores)
    from extract.store import open_store  # the only extract module downstream may import

    return open_store(path)


def require_annotations(manifest: Manifest, videos: Sequence[VideoRecord],
                        needs: Sequence[str], who: str = "this method") -> None:
    """Raise :class:`DataError` naming the videos that lack one of ``needs``."""
    for need in needs:
        if need not in ANNOTATIONS:
            raise ValueError(f"unknown annotation kind {need!r}; known: {sorted(ANNOTATIONS)}")
        lacking = [v.video_id for v in videos if not ANNOTATIONS[need](v)]
        if lacking:
            shown = ", ".join(lacking[:10]) + (" ..." if len(lacking) > 10 else "")
            raise DataError(f"manifest {manifest.root}: {len(lacking)} video(s) have no {need} "
                            f"({shown}); {who} needs {need}")


class StoreDataset(torch.utils.data.Dataset):
    """Items of the videos ``video_ids`` of ``manifest``, with their features from ``store``.

    ``needs`` names the annotations the method trains on (:data:`ANNOTATIONS`); a video lacking
    one raises :class:`DataError`, as does a video the store does not hold. ``max_snippets``
    (0 = off) cuts longer videos to that many snippets: a random window when ``random_crop``,
    else the first window. ``resample`` (0 = off) instead resamples every video to exactly that
    many snippets, as ASL's, RSKP's and LACP's official loaders do (:func:`resample_indices`:
    one random snippet per equal share of the video when ``random_crop``, the first of each
    share otherwise), with timestamps on the matching uniform grid. ``cache`` keeps each video's
    features in memory after its first read (turn it off for stores larger than RAM); pass
    another dataset's ``feature_cache`` dict to share it. ``missing="skip"`` leaves out (with a
    warning naming them) the videos the store lacks instead of refusing them. Subclasses set
    :attr:`per_step` and override :meth:`item_keys` / :meth:`targets`.
    """

    # Targets shaped (T, ...) on the feature grid: windowed with the features and padded in
    # batches with the given value. Every other tensor target is stacked; anything else listed.
    per_step: ClassVar[dict[str, float]] = {}

    def __init__(self, store: Any, manifest: Manifest, video_ids: Sequence[str], *,
                 needs: Sequence[str] = (), max_snippets: int = 0, random_crop: bool = False,
                 resample: int = 0, seed: int = 0, cache: bool | dict = True,
                 who: str = "this method", missing: str = "error"):
        self.store = open_features(store)
        self.manifest = manifest
        self.classes = tuple(manifest.classes)
        self.max_snippets = int(max_snippets)
        self.resample = int(resample)
        self.random_crop = random_crop
        self.rng = np.random.default_rng(seed)
        self.records = manifest.by_id()
        unknown = [i for i in video_ids if i not in self.records]
        if unknown:
            raise DataError(f"{manifest.root}: video ids not in the manifest: {unknown[:20]}")
        self.videos: list[VideoRecord] = [self.records[i] for i in video_ids]
        have = set(self.store.video_ids())
        absent = sorted(v.video_id for v in self.videos if v.video_id not in have)
        if absent:
            shown = ", ".join(absent[:20]) + (" ..." if len(absent) > 20 else "")
            if missing != "skip":
                raise DataError(f"feature store {store_name(self.store)} is missing "
                                f"{len(absent)} video(s) of manifest {manifest.root}: {shown} "
                                "(data.missing=skip leaves them out)")
            log.warning("feature store %s lacks %d of the %d videos; left out "
                        "(data.missing=skip): %s", store_name(self.store), len(absent),
                        len(self.videos), shown)
            self.videos = [v for v in self.videos if v.video_id in have]
        self.needs = tuple(needs)
        require_annotations(manifest, self.videos, self.needs, who)
        self.keys: list[Hashable] = [key for video in self.videos
                                     for key in self.item_keys(video)]
        self.cache = cache is not False
        self.feature_cache: dict[str, tuple[np.ndarray, np.ndarray]] = (
            cache if isinstance(cache, dict) else {})

    # ---- hooks of a task ----------------------------------------------------------------------

    def item_keys(self, video: VideoRecord) -> list[Hashable]:
        """The items one video gives (default: the video itself)."""
        return [video.video_id]

    def video_of(self, key: Hashable) -> str:
        """The video id of an item key (default: the key is the video id)."""
        return str(key)

    def targets(self, video: VideoRecord, key: Hashable, times: np.ndarray) -> dict[str, Any]:
        """The task's targets of one item at the (windowed) clip times ``times (T,)``."""
        return {}

    # ---- shared --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self.store.dim)

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Whole-video ``(T, D)`` features and ``(T,)`` timestamps, checked and cached."""
        if video_id in self.feature_cache:
            return self.feature_cache[video_id]
        feats = np.asarray(self.store.read_features(video_id), dtype=np.float32)
        times = np.asarray(self.store.read_timestamps(video_id), dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise DataError(f"feature store {store_name(self.store)}: video {video_id!r} "
                            f"has features of shape {feats.shape}; the store says "
                            f"dim={self.dim}")
        if feats.shape[0] == 0 or times.shape != (feats.shape[0],):
            raise DataError(f"feature store {store_name(self.store)}: video {video_id!r} "
                            f"has {feats.shape[0]} feature rows and timestamps of shape "
                            f"{times.shape}")
        if self.cache:
            self.feature_cache[video_id] = (feats, times)
        return feats, times

    def __getitem__(self, index: int) -> Item:
        key = self.keys[index]
        video = self.records[self.video_of(key)]
        feats, times = self.read(video.video_id)
        if self.resample:
            index = resample_indices(len(times), self.resample,
                                     self.rng if self.random_crop else None)
            feats, times, start = feats[index], resampled_times(times, self.resample), 0
        else:
            start, stop = self._window(len(times))
            feats, times = feats[start:stop], times[start:stop]
        return Item(key, video.video_id, torch.from_numpy(np.ascontiguousarray(feats)), times,
                    start, self.targets(video, key, times))

    def _window(self, length: int) -> tuple[int, int]:
        if not self.max_snippets or length <= self.max_snippets:
            return 0, length
        start = int(self.rng.integers(0, length - self.max_snippets + 1)) if self.random_crop else 0
        return start, start + self.max_snippets

    def collate(self, items: Sequence[Item]) -> dict[str, Any]:
        """Pad to the longest item: ``features (B, T, D)``, ``mask (B, T)`` bool (True = real);
        per-step targets ``(B, T, ...)`` (None when any item's is None), other tensor targets
        stacked, the rest as lists; plus ``key``, ``video_id``, ``timestamps``, ``offset``."""
        length = max(item.features.shape[0] for item in items)
        batch, dim = len(items), items[0].features.shape[1]
        features = torch.zeros(batch, length, dim)
        mask = torch.zeros(batch, length, dtype=torch.bool)
        for b, item in enumerate(items):
            features[b, : item.features.shape[0]] = item.features
            mask[b, : item.features.shape[0]] = True
        out: dict[str, Any] = {"features": features, "mask": mask}
        for name in items[0].targets:
            values = [item.targets[name] for item in items]
            if any(value is None for value in values):
                out[name] = None
            elif name in self.per_step:
                padded = torch.full((batch, length, *values[0].shape[1:]), self.per_step[name],
                                    dtype=values[0].dtype)
                for b, value in enumerate(values):
                    padded[b, : value.shape[0]] = value
                out[name] = padded
            elif all(torch.is_tensor(value) for value in values):
                out[name] = torch.stack(values)
            else:
                out[name] = values
        out.update(key=[item.key for item in items], video_id=[item.video_id for item in items],
                   timestamps=[item.timestamps for item in items],
                   offset=[item.offset for item in items])
        return out


def resample_indices(length: int, count: int,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """``(count,)`` snippet indices that spread ``count`` samples over a ``length``-snippet video.

    Sample ``i`` stands for the share ``[i * length / count, (i + 1) * length / count)``: with
    ``rng`` it is a random snippet of that share (both ends included, as the official
    ``random_perturb`` of ASL, RSKP and LACP draws it), else the share's first snippet (their
    ``uniform_sampling``). Shorter videos repeat snippets; ``length == count`` is the identity.
    """
    if length == count:
        return np.arange(count)
    lower = np.floor(np.arange(count) * length / count).astype(np.int64)
    if rng is None:
        return lower
    upper = np.append(lower[1:], length - 1)  # the last share draws up to the video's end
    upper = np.where(upper > lower, upper, lower)
    return rng.integers(lower, upper + 1)


def resampled_times(times: np.ndarray, count: int) -> np.ndarray:
    """``(count,)`` clip centres of :func:`resample_indices`'s samples: sample ``i`` covers
    ``length / count`` snippets from ``i * length / count`` on (the official codes' time map)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    origin = float(times[0]) - step / 2
    return origin + (np.arange(count) + 0.5) * (len(times) / count) * step


def store_name(store: Any) -> str:
    return str(getattr(store, "path", None) or getattr(store, "attrs", {}).get("path", store))
