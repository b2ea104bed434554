"""Reading (:class:`FeatureStore`) and writing (:class:`StoreWriter`) a feature store.

The layout and its guarantees are described in :mod:`extract.store.layout`; the per-backend
payload lives in ``zarr_backend.py`` / ``hdf5_backend.py``. Nothing else reads or writes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from extract.store import layout
from extract.store.hdf5_backend import Hdf5Backend
from extract.store.layout import DamagedVideoError, StoreError, StoreMismatchError
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
    """Read-only view of a store. Cheap to pickle (holds only paths): safe in DataLoader workers.

    ``attrs``: the root attrs; ``extractor``: the fingerprint; ``dim``: D; ``fps``: the source
    video fps recorded by the extractor (``None`` when the store mixes fps).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.backend = BACKENDS[layout.backend_name(self.path)]
        if not self.path.is_dir() or not self.backend.is_root(self.path):
            raise StoreError(f"{self.path}: not a {self.backend.name} feature store "
                             "(missing or not created by weakfeat)")
        self.attrs: dict[str, Any] = self.backend.read_root_attrs(self.path)
        if self.attrs.get("schema_version") != layout.SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema_version {self.attrs.get('schema_version')!r}, "
                             f"this code reads {layout.SCHEMA_VERSION}")
        self.extractor: dict[str, Any] = dict(self.attrs["extractor"])
        self.dim: int = int(self.extractor["dim"])
        fps = self.extractor.get("fps")
        self.fps: float | None = None if fps is None else float(fps)

    # ------------------------------------------------------------------ listing
    def _final(self, video_id: str) -> Path:
        return self.path / layout.VIDEOS_DIR / (layout.encode_id(video_id) + self.backend.suffix)

    def video_ids(self) -> list[str]:
        """Complete videos only, sorted."""
        folder = self.path / layout.VIDEOS_DIR
        suffix = self.backend.suffix
        names = [n for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith(".")
                 and n != "zarr.json"]
        return sorted(layout.decode_id(n[: len(n) - len(suffix)] if suffix else n) for n in names)

    def __contains__(self, video_id: str) -> bool:
        return self._final(video_id).exists()

    def __len__(self) -> int:
        return len(self.video_ids())

    def _require(self, video_id: str) -> Path:
        final = self._final(video_id)
        if not final.exists():
            raise KeyError(f"{self.path}: no complete video {video_id!r}")
        return final

    # ------------------------------------------------------------------ reading
    def read_features(self, video_id: str) -> np.ndarray:
        """(T, D) float32."""
        return self._read_checked(video_id, "features").astype(np.float32, copy=False)

    def read_timestamps(self, video_id: str) -> np.ndarray:
        """(T,) float64, clip-centre seconds."""
        return self._read_checked(video_id, "timestamps").astype(np.float64, copy=False)

    def video_attrs(self, video_id: str) -> dict[str, Any]:
        """num_frames, fps, duration (and video_id, digests, complete)."""
        final = self._require(video_id)
        with self._reading(video_id, final):
            return self.backend.read_attrs(final)

    def array_info(self, video_id: str) -> dict[str, Any]:
        """Shape and stored dtype of the features array, without reading it."""
        final = self._require(video_id)
        with self._reading(video_id, final):
            return self.backend.array_info(final, "features")

    def _read_checked(self, video_id: str, name: str) -> np.ndarray:
        """The array as stored, compared with the digest recorded at write (layout.py,
        "Integrity"); videos written before digests existed have none and read unchecked."""
        final = self._require(video_id)
        with self._reading(video_id, final):
            array, attrs = self.backend.read_array_and_attrs(final, name)
        expected = attrs.get(layout.DIGEST_ATTRS[name])
        if expected is not None and _array_digest(array) != expected:
            raise self._damaged(video_id, final, f"{name} differ from the sha256 recorded when "
                                "written: a file was lost, truncated or altered")
        return array

    @contextmanager
    def _reading(self, video_id: str, final: Path) -> Iterator[None]:
        """Whatever the backend raises while reading one video means that video is damaged."""
        try:
            yield
        except Exception as exc:  # codec, JSON, zarr and h5py errors alike
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise self._damaged(video_id, final, reason) from exc

    def _damaged(self, video_id: str, final: Path, reason: str) -> DamagedVideoError:
        return DamagedVideoError(
            f"{self.path}: video {video_id!r} is damaged ({reason}); check the whole store "
            f"with `weakfeat extract inspect --verify {self.path}`, then delete {final} and "
            "export the video again", store=str(self.path), video_id=video_id, reason=reason)

    def failures(self) -> dict[str, str]:
        """video_id -> reason, for videos that failed and are not complete now."""
        done = set(self.video_ids())
        return {k: v["reason"] for k, v in layout.read_failures(self.path).items()
                if k not in done}

    def staging_entries(self) -> list[str]:
        folder = self.path / layout.STAGING_DIR
        return sorted(os.listdir(folder)) if folder.is_dir() else []

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, backend={self.backend.name}, dim={self.dim})"


class StoreWriter:
    """Adds complete videos to a store. Several writers (processes, hosts) may share a store."""

    def __init__(self, path: Path, codec: str):
        self.store = FeatureStore(path)
        self.path = self.store.path
        self.backend = self.store.backend
        self.codec = codec
        self.dtype = np.dtype(self.store.extractor["dtype"])
        self.staging = self.path / layout.STAGING_DIR
        self.staging.mkdir(exist_ok=True)

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
        key = layout.encode_id(video_id)
        final = self.path / layout.VIDEOS_DIR / (key + self.backend.suffix)
        if final.exists():
            return
        staged = self.staging / layout.staging_name(key, self.backend.suffix)
        attrs = {"video_id": video_id, "num_frames": int(num_frames), "fps": float(fps),
                 "duration": float(duration),
                 layout.DIGEST_ATTRS["features"]: _array_digest(stored),
                 layout.DIGEST_ATTRS["timestamps"]: _array_digest(timestamps)}
        try:
            self.backend.write_video(staged, stored, timestamps, attrs, codec=self.codec)
            self.backend.commit(staged, final)
        finally:
            if staged.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
            elif staged.exists():
                staged.unlink(missing_ok=True)

    def done_ids(self) -> set[str]:
        return set(self.store.video_ids())

    def record_failures(self, failures: Mapping[str, str]) -> None:
        """Merge ``failures`` (id -> reason) into failures.jsonl; drops ids now complete."""
        layout.update_failures(self.path, failures, self.done_ids())

    def remove_stale(self) -> list[str]:
        return layout.remove_stale(self.staging)

    def close(self) -> None:
        self.remove_stale()


def open_store(path: str | Path) -> FeatureStore:
    """Open a store read-only; backend from the suffix (.zarr -> zarr v3, .h5 -> HDF5)."""
    return FeatureStore(path)


def create_store(path: str | Path, *, extractor: Mapping[str, Any],
                 manifest_sha256: str | None, codec: str | None = None) -> StoreWriter:
    """Create a store, or reopen one written by the same extractor.

    Refuses (:class:`StoreMismatchError`, showing both fingerprints) a store whose extractor
    differs. Creation is atomic (built beside the target and renamed), so concurrent writers
    racing to create the same store all end up with the same one. Leftovers of dead writers are
    removed.
    """
    path = Path(path)
    backend = BACKENDS[layout.backend_name(path)]
    extractor = layout.validate_extractor(extractor)
    codec = codec or backend.default_codec
    if codec not in backend.codecs:
        raise StoreError(f"{path}: unknown {backend.name} codec {codec!r}; "
                         f"choose from {sorted(backend.codecs)}")
    layout.remove_stale_creations(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = layout.creation_name(path)
        attrs = {"schema_version": layout.SCHEMA_VERSION, "extractor": extractor,
                 "manifest_sha256": manifest_sha256, "package_version": PACKAGE_VERSION,
                 "codec": codec}
        try:
            backend.init_root(tmp, attrs)
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    store = FeatureStore(path)
    diff = layout.fingerprint_diff(store.extractor, extractor)
    if diff:
        raise StoreMismatchError(
            f"{path}: written by a different extractor (differs in {diff}); refusing to mix.\n"
            f"  store:     {store.extractor}\n  requested: {extractor}\n"
            "Write to another --store path.")
    if manifest_sha256 and store.attrs.get("manifest_sha256") not in (None, manifest_sha256):
        log.warning("%s: was created from manifest %s, now writing from %s", path,
                    store.attrs.get("manifest_sha256"), manifest_sha256)
    stored_codec = store.attrs.get("codec", codec)
    writer = StoreWriter(path, codec=stored_codec)
    writer.remove_stale()
    return writer
