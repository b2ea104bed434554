"""Reading (:class:`FeatureStore`) and writing (:class:`StoreWriter`) a feature store.

The layout and its guarantees are described in :mod:`extract.store.layout`; the per-backend
payload lives in ``zarr_backend.py`` / ``hdf5_backend.py``, and how a video is committed on a
local disk or on object storage in ``location.py``. Nothing else reads or writes a store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from extract.store import layout
from extract.store.hdf5_backend import Hdf5Backend
from extract.store.layout import (
    DamagedVideoError,
    StorageError,
    StoreError,
    StoreMismatchError,
)
from extract.store.location import location_of, service_error
from extract.store.zarr_backend import ZarrBackend

log = logging.getLogger(__name__)

BACKENDS: dict[str, type] = {"zarr": ZarrBackend, "hdf5": Hdf5Backend}
try:
    from importlib.metadata import version as _version

    PACKAGE_VERSION = _version("weakfeat")
except Exception:  # noqa: BLE001 - not installed (running from a checkout)
    PACKAGE_VERSION = "unknown"


def _array_digest(array: np.ndarray) -> str:
    """sha256 of an array's values as stored (C order, little-endian).

    Checked on every read. For a 2,000 x 2,048 float32 video (16 MiB) it takes ~10.5 ms on a
    CPU with SHA extensions (~1.6 GB/s; several times slower without): ~+50% on a zstd zarr
    read (21 -> 33 ms) and ~3.5x an uncompressed HDF5 read (4 -> 15 ms), best of 25 reads
    from the page cache. Kept on anyway: without it a lost zarr chunk reads as zeros and a
    flipped byte as a plausible number.
    """
    return hashlib.sha256(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
                          ).hexdigest()


def _describe_nonfinite(array: np.ndarray) -> str | None:
    """``"3 NaN values, first at clip 12"`` (and the same for infinities); None if all finite."""
    if np.isfinite(array).all():
        return None
    nan = np.isnan(array)
    parts = []
    for label, mask in (("NaN", nan), ("infinite", ~nan & ~np.isfinite(array))):
        rows = mask.reshape(mask.shape[0], -1).any(axis=1)
        if rows.any():
            count = int(mask.sum())
            parts.append(f"{count} {label} value{'s' * (count != 1)}, "
                         f"first at clip {int(np.argmax(rows))}")
    return "; ".join(parts)


class FeatureStore:
    """Read-only view of a store (a local path or an ``s3://`` URL). Cheap to pickle (holds
    only its address): safe in DataLoader workers.

    ``path``: the store's path (a ``Path``) or URL (a ``str``), as messages show it; ``attrs``:
    the root attrs; ``extractor``: the fingerprint; ``dim``: D; ``fps``: the source video fps
    recorded by the extractor (``None`` when the store mixes fps).
    """

    def __init__(self, path: str | Path):
        self.location = location_of(path)
        self.path: Path | str = self.location.path
        self.backend = BACKENDS[layout.backend_name(path)]
        if not self._is_root():
            raise StoreError(f"{self.path}: not a {self.backend.name} feature store "
                             "(missing or not created by weakfeat)")
        self.attrs: dict[str, Any] = self.backend.read_root_attrs(self.location)
        if self.attrs.get("schema_version") != layout.SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema_version {self.attrs.get('schema_version')!r}, "
                             f"this code reads {layout.SCHEMA_VERSION}")
        self.extractor: dict[str, Any] = dict(self.attrs["extractor"])
        self.dim: int = int(self.extractor["dim"])
        fps = self.extractor.get("fps")
        self.fps: float | None = None if fps is None else float(fps)

    def _is_root(self) -> bool:
        if self.location.renames and not Path(self.path).is_dir():
            return False
        return self.location.exists(self.backend.root_marker)

    # ------------------------------------------------------------------ listing
    def _rel(self, video_id: str) -> str:
        """``videos/<key>[.h5]``: where a video lives, relative to the store."""
        return f"{layout.VIDEOS_DIR}/{layout.encode_id(video_id)}{self.backend.suffix}"

    def video_ids(self) -> list[str]:
        """Complete videos only, sorted."""
        return sorted(layout.decode_id(k) for k in self.backend.complete_keys(self.location))

    def __contains__(self, video_id: str) -> bool:
        return self.location.exists(self.backend.video_marker(self._rel(video_id)))

    def __len__(self) -> int:
        return len(self.video_ids())

    def _require(self, video_id: str) -> str:
        if video_id not in self:
            raise KeyError(f"{self.path}: no complete video {video_id!r}")
        return self._rel(video_id)

    # ------------------------------------------------------------------ reading
    def read_features(self, video_id: str) -> np.ndarray:
        """(T, D) float32."""
        return self._read_checked(video_id, "features").astype(np.float32, copy=False)

    def read_timestamps(self, video_id: str) -> np.ndarray:
        """(T,) float64, clip-centre seconds."""
        return self._read_checked(video_id, "timestamps").astype(np.float64, copy=False)

    def video_attrs(self, video_id: str) -> dict[str, Any]:
        """num_frames, fps, duration (and video_id, digests, complete)."""
        rel = self._require(video_id)
        with self._reading(video_id, rel):
            return self.backend.read_attrs(self.location, rel)

    def array_info(self, video_id: str) -> dict[str, Any]:
        """Shape and stored dtype of the features array, without reading it."""
        rel = self._require(video_id)
        with self._reading(video_id, rel):
            return self.backend.array_info(self.location, rel, "features")

    def _read_checked(self, video_id: str, name: str) -> np.ndarray:
        """The array as stored, compared with the digest recorded at write (layout.py,
        "Integrity"); videos written before digests existed have none and read unchecked."""
        rel = self._require(video_id)
        with self._reading(video_id, rel):
            array, attrs = self.backend.read_array_and_attrs(self.location, rel, name)
        expected = attrs.get(layout.DIGEST_ATTRS[name])
        if expected is not None and _array_digest(array) != expected:
            raise self._damaged(video_id, rel, f"{name} differ from the sha256 recorded when "
                                "written: a file was lost, truncated or altered")
        return array

    @contextmanager
    def _reading(self, video_id: str, rel: str) -> Iterator[None]:
        """Whatever the backend raises while reading one video means that video is damaged."""
        try:
            yield
        except StorageError:
            raise  # the storage service failed, not this video
        except Exception as exc:  # codec, JSON, zarr and h5py errors alike
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            if service_error(exc):  # raised inside zarr's reads of object storage
                raise StorageError(f"{self.path}: object storage refused or could not be "
                                   f"reached while reading video {video_id!r} ({reason})"
                                   ) from exc
            raise self._damaged(video_id, rel, reason) from exc

    def _damaged(self, video_id: str, rel: str, reason: str) -> DamagedVideoError:
        return DamagedVideoError(
            f"{self.path}: video {video_id!r} is damaged ({reason}); check the whole store "
            f"with `weakfeat extract inspect --verify {self.path}`, then delete "
            f"{self.location.url}/{rel} and export the video again", store=str(self.path),
            video_id=video_id, reason=reason)

    def failures(self) -> dict[str, str]:
        """video_id -> reason, for videos that failed and are not complete now."""
        done = set(self.video_ids())
        return {k: v["reason"] for k, v in layout.read_failures(self.location).items()
                if k not in done}

    def staging_entries(self) -> list[str]:
        """Videos being written, or left half-written by a killed writer."""
        keys = self.backend.complete_keys(self.location)
        return self.location.incomplete([k + self.backend.suffix for k in keys])

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, backend={self.backend.name}, dim={self.dim})"


class StoreWriter:
    """Adds complete videos to a store. Several writers (processes, hosts) may share a store."""

    def __init__(self, path: str | Path, codec: str):
        self.store = FeatureStore(path)
        self.path = self.store.path
        self.location = self.store.location
        self.backend = self.store.backend
        self.codec = codec
        self.dtype = np.dtype(self.store.extractor["dtype"])

    def write_video(self, video_id: str, features: np.ndarray, timestamps: np.ndarray, *,
                    num_frames: int, fps: float, duration: float) -> None:
        """Add one video atomically: readers see all of it or nothing. ``features`` (T, D),
        ``timestamps`` (T,) seconds. A video that is already complete is left untouched."""
        features = np.asarray(features)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.store.dim:
            raise StoreError(f"{self.path}: video {video_id!r} features shape {features.shape}, "
                             f"store dim is {self.store.dim}")
        if timestamps.shape != (features.shape[0],):
            raise StoreError(f"{self.path}: video {video_id!r} timestamps shape "
                             f"{timestamps.shape} != ({features.shape[0]},)")
        if features.shape[0] == 0:
            raise StoreError(f"{self.path}: video {video_id!r} has no clips (T = 0)")
        with np.errstate(over="ignore"):  # an overflow to inf is refused just below
            stored = np.ascontiguousarray(features, dtype=self.dtype)
        for name, array in (("features", stored), ("timestamps", timestamps)):
            problem = _describe_nonfinite(array)
            if problem:
                if array is stored and np.isfinite(features).all():
                    problem += f" after the cast to {self.dtype} (values beyond its range)"
                raise StoreError(f"{self.path}: video {video_id!r} {name} hold {problem}; "
                                 "refusing to store non-finite values")
        rel = self.store._rel(video_id)
        marker = self.backend.video_marker(rel)
        if self.location.exists(marker):
            return
        attrs = {"video_id": video_id, "num_frames": int(num_frames), "fps": float(fps),
                 "duration": float(duration),
                 layout.DIGEST_ATTRS["features"]: _array_digest(stored),
                 layout.DIGEST_ATTRS["timestamps"]: _array_digest(timestamps)}
        objects = self.backend.encode_video(stored, timestamps, attrs, codec=self.codec)
        self.location.put_video(rel, objects, marker)

    def done_ids(self) -> set[str]:
        return set(self.store.video_ids())

    def record_failures(self, failures: Mapping[str, str]) -> None:
        """Add ``failures`` (id -> reason) to the store's records; drops ids now complete."""
        records = {k: layout.failure_record(k, v) for k, v in failures.items()}
        self.location.add_failures(records, self.done_ids())

    def remove_stale(self) -> list[str]:
        return self.location.remove_stale()

    def close(self) -> None:
        self.remove_stale()


def open_store(path: str | Path) -> FeatureStore:
    """Open a store read-only; backend from the suffix (.zarr -> zarr v3, .h5 -> HDF5); a
    local path or an ``s3://`` URL."""
    return FeatureStore(path)


def create_store(path: str | Path, *, extractor: Mapping[str, Any],
                 manifest_sha256: str | None, codec: str | None = None) -> StoreWriter:
    """Create a store, or reopen one written by the same extractor.

    Refuses (:class:`StoreMismatchError`, showing both fingerprints) a store whose extractor
    differs. Creation is atomic (a local root is built beside the target and renamed; on object
    storage the root's marker is put only if absent), so concurrent writers racing to create
    the same store all end up with the same one. Leftovers of dead writers are removed.
    """
    location = location_of(path)
    backend = BACKENDS[layout.backend_name(path)]
    extractor = layout.validate_extractor(extractor)
    codec = codec or backend.default_codec
    if codec not in backend.codecs:
        raise StoreError(f"{path}: unknown {backend.name} codec {codec!r}; "
                         f"choose from {sorted(backend.codecs)}")
    location.create(backend.root_objects({
        "schema_version": layout.SCHEMA_VERSION, "extractor": extractor,
        "manifest_sha256": manifest_sha256, "package_version": PACKAGE_VERSION, "codec": codec}))
    store = FeatureStore(path)
    diff = layout.fingerprint_diff(store.extractor, extractor)
    if diff:
        raise StoreMismatchError(
            f"{store.path}: written by a different extractor (differs in {diff}); refusing to "
            f"mix.\n  store:     {store.extractor}\n  requested: {extractor}\n"
            "Write to another --store path.")
    if manifest_sha256 and store.attrs.get("manifest_sha256") not in (None, manifest_sha256):
        log.warning("%s: was created from manifest %s, now writing from %s", store.path,
                    store.attrs.get("manifest_sha256"), manifest_sha256)
    stored_codec = store.attrs.get("codec", codec)
    writer = StoreWriter(path, codec=stored_codec)
    writer.remove_stale()
    return writer
