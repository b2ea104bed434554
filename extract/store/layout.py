"""The on-disk layout of a feature store: the one place that knows where things live.

Both backends are a *folder* (``OUT.zarr/`` or ``OUT.h5/``)::

    OUT.zarr/                     zarr v3 group; attrs: schema_version, extractor {...},
                                  manifest_sha256, package_version, codec
      videos/<key>/               one zarr group per complete video
        features    (T, D)        chunked along T (~1 MiB chunks), compressed
        timestamps  (T,)          float64, clip-centre seconds
        attrs: video_id, num_frames, fps, duration, sha256_features, sha256_timestamps,
               complete=true
      failures.jsonl              videos that could not be exported, with the reason
      .staging/                   videos being written (invisible to readers)
      .lock                       serialises read-modify-write of failures.jsonl

    OUT.h5/
      store.json                  the same root attrs as the zarr group
      videos/<key>.h5             one HDF5 file per complete video (same datasets and attrs)
      failures.jsonl, .staging/, .lock   as above

``<key>`` is the video id percent-encoded (:func:`encode_id`) so that ids holding ``/``,
spaces or a leading dot are valid file names.

**Completeness.** zarr returns the fill value for chunks that were never written, without
error, so a half-written video would read as zeros. A video is therefore built under
``.staging/<key>#<host>#<pid>#<random>`` and moved to ``videos/<key>`` by one atomic
``rename`` (``link`` for HDF5 files) only once every array and attribute is written (the
``complete=true`` attr is also written last; `inspect --verify` checks it). A killed writer leaves at
most a staging entry, never a partial video; the next writer removes staging entries whose
process is dead (same host) or that are older than a day (other hosts). On object storage
(``s3://``), which has no rename, a video's objects go up in place and its marker last (the
group's ``zarr.json``, or the one ``.h5`` object), put only if absent; failure records are one
object per writer under ``failures/`` (location.py tells how and why).

**Integrity.** Neither backend notices damage on its own: zarr reads a lost chunk file as the
fill value and an unchecksummed zstd chunk with flipped bytes as garbage numbers; an
uncompressed HDF5 dataset returns whatever bytes are on disk. The writer therefore refuses
NaN / Inf and records the sha256 of each array's stored bytes (C order, little-endian) in the
video's attrs; every read recomputes it (stores written before digests existed read
unchecked), and any failure to read one video becomes a :class:`DamagedVideoError` naming it.
zarr's default codec also writes zstd's own checksum per chunk, so most flipped bytes already
fail to decompress.

**Why one HDF5 file per video.** HDF5 allows one writer per file and a writer killed
mid-write can leave the whole file unreadable. With one file per video, written under a
staging name and linked into place, a kill loses at most the video in flight, parallel
writers (dask workers, ``--shard`` jobs) never share a file, and readers open one small file
per read, which is safe in DataLoader worker processes (no handle crosses a fork). The index
is the directory listing. ``weakfeat extract convert`` moves a store between backends.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from data_manifests.errors import UserError

SCHEMA_VERSION = 1
VIDEOS_DIR = "videos"
STAGING_DIR = ".staging"
FAILURES_FILE = "failures.jsonl"
FAILURES_DIR = "failures"  # on object storage: one object of records per writer
LOCK_FILE = ".lock"
# Keys of the extractor fingerprint (CONTRACTS F); all must be present and equal to reuse a store.
EXTRACTOR_KEYS = ("backbone", "weights_sha256", "supervision", "clip_frames", "frame_stride",
                  "clip_step", "fps", "crops", "dim", "dtype")
DTYPES = ("float32", "float16")
# Video attrs holding the sha256 of each array's stored bytes (see "Integrity" above).
DIGEST_ATTRS = {"features": "sha256_features", "timestamps": "sha256_timestamps"}
STALE_FOREIGN_S = 24 * 3600.0  # staging entries of other hosts older than this are removed
_SAFE = "-_.,=+@~"


class StoreError(UserError, RuntimeError):
    """A store is missing, malformed, or asked for something it does not hold."""


class StorageError(StoreError):
    """Object storage could not be reached, or refused (credentials, permissions, bucket)."""


class StoreMismatchError(StoreError):
    """An existing store was written by a different extractor."""


class DamagedVideoError(StoreError):
    """A complete video that cannot be read back as it was written (lost, truncated or
    altered files). ``store``, ``video_id`` and ``reason`` let tools list it and go on."""

    def __init__(self, message: str, *, store: str = "", video_id: str = "",
                 reason: str = "") -> None:
        super().__init__(message)
        self.store = store
        self.video_id = video_id
        self.reason = reason


def backend_name(path: str | Path) -> str:
    """``"zarr"`` for ``*.zarr``, ``"hdf5"`` for ``*.h5`` / ``*.hdf5``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".zarr":
        return "zarr"
    if suffix in (".h5", ".hdf5"):
        return "hdf5"
    raise StoreError(f"{path}: cannot tell the store backend from the suffix {suffix!r}; "
                     "use .zarr (zarr v3) or .h5 (HDF5)")


def encode_id(video_id: str) -> str:
    """A file-name-safe key for a video id (percent-encoding; reversible by :func:`decode_id`)."""
    if not isinstance(video_id, str) or not video_id:
        raise StoreError(f"video id must be a non-empty string, got {video_id!r}")
    key = quote(video_id, safe=_SAFE)
    if key[0] in "._":  # zarr reserves names starting with "__"; "." / ".." are not names
        key = f"%{ord(key[0]):02X}" + key[1:]
    return key


def decode_id(key: str) -> str:
    return unquote(key)


def validate_extractor(extractor: Mapping[str, Any]) -> dict[str, Any]:
    """Check the fingerprint has every key (extra keys are kept) and a known dtype."""
    missing = [k for k in EXTRACTOR_KEYS if k not in extractor]
    if missing:
        raise StoreError(f"extractor fingerprint lacks {missing}; got {dict(extractor)}")
    if extractor["dtype"] not in DTYPES:
        raise StoreError(f"extractor dtype {extractor['dtype']!r} not in {DTYPES}")
    return json.loads(json.dumps(dict(extractor)))  # plain JSON types, as stored


def fingerprint_diff(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [k for k in keys if stored.get(k) != wanted.get(k)]


# ----------------------------------------------------------------------------- staging
def staging_name(key: str, suffix: str = "") -> str:
    """``<key>#<host>#<pid>#<random><suffix>``: ``#`` never occurs in an encoded key."""
    return f"{key}#{socket.gethostname()}#{os.getpid()}#{secrets.token_hex(4)}{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(name: str, mtime: float) -> bool:
    parts = name.split("#")
    try:
        host, pid = parts[-3], int(parts[-2])
    except (ValueError, IndexError):
        return time.time() - mtime > STALE_FOREIGN_S
    if host == socket.gethostname():
        return not _pid_alive(pid)
    return time.time() - mtime > STALE_FOREIGN_S


def remove_stale(folder: Path) -> list[str]:
    """Remove leftovers of dead writers in ``folder`` (a store's ``.staging``); returns names."""
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if _is_stale(entry.name, mtime):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def remove_stale_creations(path: Path) -> None:
    """Remove half-created stores (``.<name>.creating#<host>#<pid>#<rand>``) beside ``path``."""
    if path.parent.is_dir():
        for entry in path.parent.glob(f".{path.name}.creating#*"):
            if _is_stale(entry.name, entry.stat().st_mtime):
                shutil.rmtree(entry, ignore_errors=True)


def creation_name(path: Path) -> Path:
    return path.parent / staging_name(f".{path.name}.creating")


# ----------------------------------------------------------------------------- failures
@contextmanager
def locked(root: Path) -> Iterator[None]:
    with open(root / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def failure_record(video_id: str, reason: str) -> dict[str, Any]:
    """One line of the failure records: the reason, when and where."""
    return {"video_id": video_id, "reason": reason,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname()}


def parse_failures(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """video_id -> record; of several records of one video the latest wins."""
    out: dict[str, dict[str, Any]] = {}
    records = [json.loads(line) for line in lines if line.strip()]
    for record in sorted(records, key=lambda r: r.get("time", "")):
        out[record["video_id"]] = record
    return out


def failure_text(records: Mapping[str, dict[str, Any]]) -> str:
    return "".join(json.dumps(records[k], sort_keys=True) + "\n" for k in sorted(records))


def read_failures(root: Any) -> dict[str, dict[str, Any]]:
    """video_id -> {"reason", "time", "host"} of a store (its path, URL or location); ids
    complete by now may be among them (``FeatureStore.failures`` leaves those out)."""
    from extract.store.location import location_of

    location = root if hasattr(root, "failure_lines") else location_of(root)
    return parse_failures(location.failure_lines())
