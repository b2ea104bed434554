"""Localization dataset: one item per video of a manifest split, read from a feature store.

Each item carries the store's ``(T, D)`` features and ``(T,)`` clip-centre timestamps plus the
targets at that grid: multi-hot video labels ``(K,)``, snippet labels ``(T, K)`` from the
manifest segments (when the dataset has them) and point labels ``(T, K)`` (each annotated point
mapped to the snippet whose timestamp is nearest). Batches are padded to the longest item with a
``(B, T)`` mask; long videos can be cut to a fixed number of snippets (random window in
training, a fixed window otherwise) so memory stays bounded.

This module reads stores only through ``extract.store`` (downstream never decodes video).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from data_manifests.schema import Manifest, VideoRecord, labels_at_times


class DataError(ValueError):
    """A store and a manifest do not fit together (names the store, the ids or the values)."""


class FeatureReader(Protocol):
    """The part of ``extract.store.FeatureStore`` this module uses (CONTRACTS F)."""

    dim: int

    def video_ids(self) -> list[str]: ...
    def read_features(self, video_id: str) -> np.ndarray: ...
    def read_timestamps(self, video_id: str) -> np.ndarray: ...


@dataclass(frozen=True)
class TalItem:
    video_id: str
    features: torch.Tensor  # (T, D) float32
    timestamps: np.ndarray  # (T,) float64, clip-centre seconds
    video_labels: torch.Tensor  # (K,) float {0, 1}
    snippet_labels: torch.Tensor | None  # (T, K) float {0, 1}; None without segments
    point_labels: torch.Tensor | None  # (T, K) float {0, 1}; None unless points were asked for
    offset: int  # index of the first snippet of this item inside the whole video


def open_features(path: Any) -> FeatureReader:
    """Open a store path read-only (``extract.store.open_store``); objects pass through."""
    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        return path  # already a reader (tests pass small in-memory stores)
    from extract.store import open_store  # the only extract module downstream may import

    return open_store(path)


def held_out_split(manifest: Manifest, fraction: float,
                   split: str = "train") -> tuple[list[str], list[str]]:
    """Deterministic (training ids, validation ids) from the videos of one manifest split.

    The videos are ordered by the sha1 of their id and the first ``round(fraction * n)`` are
    held out: the choice depends on the ids only (no seed, no file order), so it is the same for
    every run, seed and machine, and the held-out share is the asked one (a threshold on the
    hash gave 56 of THUMOS'14's 200 videos for 0.2). At least one video stays on each side when
    there are two or more.
    """
    ids = [v.video_id for v in manifest.videos if v.split == split]
    if not ids:
        known = sorted({v.split for v in manifest.videos})
        raise DataError(f"{manifest.root}: no {split!r} videos to hold out a validation part "
                        f"from (splits: {', '.join(known)})")
    keyed = sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    count = round(fraction * len(ids))
    if len(ids) > 1:
        count = min(max(count, 1), len(ids) - 1)
    val = keyed[:count]
    held = set(val)
    train = [i for i in ids if i not in held]
    return sorted(train), sorted(val)


class TalDataset(torch.utils.data.Dataset):
    """Videos ``video_ids`` of ``manifest`` with their features from ``store``.

    ``needs`` names the annotations the method trains on: "segments" (snippet labels) or
    "points"; a manifest without them raises :class:`DataError`. ``max_snippets`` (0 = off)
    cuts longer videos to that many snippets: a random window when ``random_crop``, else the
    first window (use 0 at evaluation to see whole videos). ``cache`` keeps each video's
    features in memory after its first read (turn it off for stores larger than RAM); pass
    another dataset's ``feature_cache`` dict to share it.
    """

    def __init__(self, store: Any, manifest: Manifest, video_ids: Sequence[str], *,
                 needs: Sequence[str] = (), max_snippets: int = 0, random_crop: bool = False,
                 seed: int = 0, cache: bool | dict = True):
        self.store = open_features(store)
        self.manifest = manifest
        self.classes = tuple(manifest.classes)
        self.max_snippets = int(max_snippets)
        self.random_crop = random_crop
        self.rng = np.random.default_rng(seed)
        records = manifest.by_id()
        unknown = [i for i in video_ids if i not in records]
        if unknown:
            raise DataError(f"{manifest.root}: video ids not in the manifest: {unknown[:20]}")
        self.videos: list[VideoRecord] = [records[i] for i in video_ids]
        have = set(self.store.video_ids())
        missing = sorted(v.video_id for v in self.videos if v.video_id not in have)
        if missing:
            shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise DataError(f"feature store {_store_name(self.store)} is missing "
                            f"{len(missing)} video(s) of manifest {manifest.root}: {shown}")
        self.needs = tuple(needs)
        for need in self.needs:
            if need not in ("segments", "points"):
                raise ValueError(f"unknown annotation kind {need!r}; use 'segments' or 'points'")
            lacking = [v.video_id for v in self.videos
                       if getattr(v, need) is None or (need == "points" and v.labels
                                                       and not v.points)]
            if lacking:
                raise DataError(f"manifest {manifest.root} has no {need} for "
                                f"{len(lacking)} video(s) ({', '.join(lacking[:10])}); "
                                f"{need} are needed here")
        self.cache = cache is not False
        self.feature_cache: dict[str, tuple[np.ndarray, np.ndarray]] = (
            cache if isinstance(cache, dict) else {})

    @property
    def dim(self) -> int:
        return int(self.store.dim)

    def __len__(self) -> int:
        return len(self.videos)

    def read(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Whole-video ``(T, D)`` features and ``(T,)`` timestamps, checked and cached."""
        if video_id in self.feature_cache:
            return self.feature_cache[video_id]
        feats = np.asarray(self.store.read_features(video_id), dtype=np.float32)
        times = np.asarray(self.store.read_timestamps(video_id), dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise DataError(f"feature store {_store_name(self.store)}: video {video_id!r} "
                            f"has features of shape {feats.shape}; the store says "
                            f"dim={self.dim}")
        if feats.shape[0] == 0 or times.shape != (feats.shape[0],):
            raise DataError(f"feature store {_store_name(self.store)}: video {video_id!r} "
                            f"has {feats.shape[0]} feature rows and timestamps of shape "
                            f"{times.shape}")
        if self.cache:
            self.feature_cache[video_id] = (feats, times)
        return feats, times

    def __getitem__(self, index: int) -> TalItem:
        video = self.videos[index]
        feats, times = self.read(video.video_id)
        start, stop = self._window(len(times))
        feats, times = feats[start:stop], times[start:stop]
        video_labels = torch.zeros(len(self.classes))
        for name in video.labels:
            video_labels[self.manifest.class_index[name]] = 1.0
        snippet = None
        if video.segments is not None:
            snippet = torch.from_numpy(labels_at_times(video, self.classes, times).astype(np.float32))
        points = None
        if "points" in self.needs:
            points = torch.from_numpy(point_targets(video, self.classes, times))
        return TalItem(video.video_id, torch.from_numpy(np.ascontiguousarray(feats)), times,
                       video_labels, snippet, points, start)

    def _window(self, length: int) -> tuple[int, int]:
        if not self.max_snippets or length <= self.max_snippets:
            return 0, length
        start = int(self.rng.integers(0, length - self.max_snippets + 1)) if self.random_crop else 0
        return start, start + self.max_snippets


def point_targets(video: VideoRecord, classes: Sequence[str], times: np.ndarray) -> np.ndarray:
    """``(T, K)`` float: 1 at the snippet nearest to each annotated point of the class.

    Points outside ``[times[0] - step, times[-1] + step]`` (a crop that does not hold them) are
    dropped rather than piled onto the window edge.
    """
    out = np.zeros((len(times), len(classes)), dtype=np.float32)
    if not video.points or len(times) == 0:
        return out
    index = {name: i for i, name in enumerate(classes)}
    step = float(np.median(np.diff(times))) if len(times) > 1 else float("inf")
    for point in video.points:
        if not times[0] - step <= point.time <= times[-1] + step:
            continue
        out[int(np.argmin(np.abs(times - point.time))), index[point.label]] = 1.0
    return out


def collate_tal(items: Sequence[TalItem]) -> dict[str, Any]:
    """Pad to the longest item: ``features (B, T, D)``, ``mask (B, T)`` bool (True = real),
    ``video_labels (B, K)``, ``snippet_labels``/``point_labels`` ``(B, T, K)`` or None,
    plus the per-item ``video_id``, ``timestamps`` and ``offset`` lists."""
    length = max(item.features.shape[0] for item in items)
    batch, dim = len(items), items[0].features.shape[1]
    num_classes = items[0].video_labels.shape[0]
    features = torch.zeros(batch, length, dim)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    for b, item in enumerate(items):
        features[b, : item.features.shape[0]] = item.features
        mask[b, : item.features.shape[0]] = True

    def stack(name: str) -> torch.Tensor | None:
        if any(getattr(item, name) is None for item in items):
            return None
        out = torch.zeros(batch, length, num_classes)
        for b, item in enumerate(items):
            value = getattr(item, name)
            out[b, : value.shape[0]] = value
        return out

    return {
        "features": features,
        "mask": mask,
        "video_labels": torch.stack([item.video_labels for item in items]),
        "snippet_labels": stack("snippet_labels"),
        "point_labels": stack("point_labels"),
        "video_id": [item.video_id for item in items],
        "timestamps": [item.timestamps for item in items],
        "offset": [item.offset for item in items],
    }


def _store_name(store: Any) -> str:
    return str(getattr(store, "path", None) or getattr(store, "attrs", {}).get("path", store))
