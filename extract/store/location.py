"""Where a store lives: a local folder, or a prefix on object storage (``s3://bucket/prefix``).

Both hold the same objects under the same relative names (layout.py); they differ in how a
video becomes visible at once, since object storage has no rename:

- :class:`LocalFolder` writes a video under ``.staging/`` and moves it into ``videos/`` with one
  ``rename`` (zarr folder) or ``link`` (HDF5 file), as layout.py describes.
- :class:`ObjectPrefix` uploads a video's objects in place with its *marker* last: the video
  group's ``zarr.json`` (zarr), or the one ``.h5`` object (HDF5). One PUT is atomic and S3 reads
  are strongly consistent, so a reader, which lists and opens markers only, sees a video whole or
  not at all. The marker is put with ``If-None-Match: *``, so no writer replaces a committed
  video. A killed writer leaves objects without a marker: invisible to readers, listed by
  ``inspect`` as incomplete, overwritten by the next attempt. Two writers of one video at once
  (the same shard given to two jobs) could interleave chunks; the digests written in the marker
  then fail the read, so the video reads as damaged, never as other numbers. Failure records go
  to one object per writer under ``failures/``: object storage has no lock to serialise a
  read-modify-write of one file.

Credentials and endpoint come from the usual places of boto (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``; ``AWS_ENDPOINT_URL`` for an S3-compatible
server such as MinIO).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from data_manifests.errors import full_disk_names
from extract.store import layout
from extract.store.layout import StorageError, StoreError

SCHEMES = ("s3",)


def is_url(path: str | Path) -> bool:
    return "://" in str(path)


def location_of(path: str | Path) -> LocalFolder | ObjectPrefix:
    """The location of a store path: a local path, or an ``s3://`` URL."""
    text = str(path)
    if not is_url(text):
        return LocalFolder(Path(path))
    scheme = text.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise StoreError(f"{text}: a store is a local path or an s3:// URL, not {scheme}://")
    return ObjectPrefix(text)


def store_exists(path: str | Path) -> bool:
    """Anything at ``path`` (a store, or something in the way of one)."""
    location = location_of(path)
    return location.path.exists() if isinstance(location, LocalFolder) else location.any()


class LocalFolder:
    """A store folder on a local (or shared POSIX) file system."""

    renames = True

    def __init__(self, path: Path):
        self.path = path
        self.url = str(path)

    def file(self, rel: str) -> Path:
        return self.path / rel

    def exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def read_text(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def names(self, rel: str) -> list[str]:
        folder = self.path / rel
        return os.listdir(folder) if folder.is_dir() else []

    def zarr_store(self, rel: str, read_only: bool = True) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(self.path / rel, read_only=read_only)

    def h5_source(self, rel: str) -> str:
        return str(self.path / rel)

    def remove(self, rel: str) -> None:
        target = self.path / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    # ------------------------------------------------------------------ writing
    def create(self, objects: Mapping[str, bytes]) -> None:
        """Build the root beside the target and rename it into place (racing creators all end
        up with one root)."""
        layout.remove_stale_creations(self.path)
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = layout.creation_name(self.path)
        try:
            write_files(tmp, objects)
            (tmp / layout.VIDEOS_DIR).mkdir(exist_ok=True)
            os.rename(tmp, self.path)
        except OSError:
            if not self.path.exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def put_video(self, rel: str, objects: Mapping[str, bytes], marker: str) -> bool:
        """Stage the video's objects, then move them to ``rel`` at once; False if ``rel`` was
        already there. ``objects`` are named relative to ``rel`` ("" is ``rel`` itself, a file)."""
        del marker  # the rename / link is the commit
        final = self.path / rel
        staging = self.path / layout.STAGING_DIR
        staging.mkdir(exist_ok=True)
        staged = staging / layout.staging_name(final.name.removesuffix(".h5"),
                                               ".h5" if "" in objects else "")
        try:
            if "" in objects:  # one file, linked into place (a link never overwrites)
                with full_disk_names(staged):
                    staged.write_bytes(objects[""])
                try:
                    os.link(staged, final)
                except FileExistsError:
                    return False
                return True
            write_files(staged, objects)
            try:
                os.rename(staged, final)
            except OSError:
                if not final.is_dir():
                    raise
                return False
            return True
        finally:
            if staged.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
            else:
                staged.unlink(missing_ok=True)

    def incomplete(self, complete: list[str]) -> list[str]:
        """Videos being written, or left by a killed writer: the staging entries."""
        del complete
        return sorted(self.names(layout.STAGING_DIR))

    def remove_stale(self) -> list[str]:
        return layout.remove_stale(self.path / layout.STAGING_DIR)

    # ------------------------------------------------------------------ failure records
    def failure_lines(self) -> Iterator[str]:
        path = self.path / layout.FAILURES_FILE
        if path.exists():
            yield from path.read_text().splitlines()

    def add_failures(self, records: Mapping[str, dict[str, Any]], complete: set[str]) -> None:
        """Merge ``records`` into failures.jsonl and drop ids now complete (locked, atomic)."""
        with layout.locked(self.path):
            merged = layout.parse_failures(self.failure_lines())
            merged.update(records)
            merged = {k: v for k, v in merged.items() if k not in complete}
            path = self.path / layout.FAILURES_FILE
            if not merged:
                path.unlink(missing_ok=True)
                return
            tmp = self.path / layout.STAGING_DIR / layout.staging_name(layout.FAILURES_FILE)
            tmp.parent.mkdir(exist_ok=True)
            tmp.write_text(layout.failure_text(merged))
            os.replace(tmp, path)


def _speaking(write: bool) -> Callable:
    """Errors of the storage service become one :class:`StorageError` naming the store's URL:
    network and credential errors always, and every OS error of a write but "already there"
    (a missing object read inside a video is that video's damage, told by the reader)."""
    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def run(self: ObjectPrefix, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except FileExistsError:
                raise
            except Exception as exc:
                if not (write and isinstance(exc, OSError)) and not service_error(exc):
                    raise
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise StorageError(f"{self.url}: object storage refused or could not be "
                                   f"reached ({reason})") from exc
        return run
    return wrap


def service_error(exc: BaseException) -> bool:
    """Network, credential and permission errors of the S3 client."""
    if isinstance(exc, PermissionError):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return False
    return isinstance(exc, (BotoCoreError, ClientError))


class ObjectPrefix:
    """A store under an object-storage URL, through fsspec (s3fs for ``s3://``)."""

    renames = False

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.path = self.url  # what messages show
        self.root = self.url.split("://", 1)[1]
        self._fs = None

    def __getstate__(self) -> dict[str, Any]:  # the file system is rebuilt in each process
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                import fsspec

                # No listings cache: other processes commit videos while this one reads.
                self._fs = fsspec.filesystem(self.url.split("://", 1)[0],
                                             use_listings_cache=False)
            except ImportError as exc:
                raise StoreError(f"{self.url}: object storage needs s3fs "
                                 "(pip install 'weakfeat[s3]')") from exc
        return self._fs

    def _key(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    @_speaking(write=False)
    def any(self) -> bool:
        return bool(self.fs.find(self.root, maxdepth=1, withdirs=True)) or self.fs.isfile(
            self.root)

    @_speaking(write=False)
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._key(rel))

    @_speaking(write=False)
    def read_text(self, rel: str) -> str:
        return self.fs.cat_file(self._key(rel)).decode()

    @_speaking(write=False)
    def names(self, rel: str) -> list[str]:
        try:
            return [p.rstrip("/").rsplit("/", 1)[-1]
                    for p in self.fs.ls(self._key(rel), detail=False, refresh=True)]
        except FileNotFoundError:
            return []

    @_speaking(write=False)
    def glob(self, pattern: str) -> list[str]:
        """Relative names matching ``pattern``: one recursive listing of the pattern's fixed
        prefix (fsspec's glob would list every folder on the way, one request each)."""
        prefix = pattern.split("*", 1)[0].rstrip("/")
        names = (p[len(self.root) + 1:] for p in self.fs.find(self._key(prefix)))
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)
                and n.count("/") == pattern.count("/")]

    def zarr_store(self, rel: str, read_only: bool = True) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(f"{self.url}/{rel}", read_only=read_only)

    @_speaking(write=False)
    def h5_source(self, rel: str) -> io.BytesIO:
        return io.BytesIO(self.fs.cat_file(self._key(rel)))

    @_speaking(write=True)
    def remove(self, rel: str) -> None:
        self.fs.rm(self._key(rel), recursive=True)

    # ------------------------------------------------------------------ writing
    def _put_marker(self, rel: str, data: bytes) -> bool:
        """Put ``rel`` only if absent (S3 conditional write); False when it was there."""
        try:
            self.fs.pipe_file(self._key(rel), data, IfNoneMatch="*")
        except FileExistsError:
            return False
        return True

    @_speaking(write=True)
    def create(self, objects: Mapping[str, bytes]) -> None:
        """Upload the root's objects, its marker (the last) only if no root is there yet."""
        *rest, marker = objects
        if self.exists(marker):
            return
        if rest:
            self.fs.pipe({self._key(k): objects[k] for k in rest})
        self._put_marker(marker, objects[marker])

    @_speaking(write=True)
    def put_video(self, rel: str, objects: Mapping[str, bytes], marker: str) -> bool:
        """Upload the video's objects, then its marker; False if the marker was there. The
        caller has seen no marker (``StoreWriter.write_video`` looks before encoding): the
        conditional put settles a race, one more look here would only cost a request."""
        named = {(f"{rel}/{k}" if k else rel): v for k, v in objects.items()}
        last = named.pop(marker)
        if named:
            self.fs.pipe({self._key(k): v for k, v in named.items()})
        return self._put_marker(marker, last)

    def incomplete(self, complete: list[str]) -> list[str]:
        """Names under ``videos/`` that no marker commits (a killed or running writer);
        ``complete``: the committed names."""
        done = set(complete)
        return sorted(n for n in self.names(layout.VIDEOS_DIR)
                      if n not in done and n != "zarr.json")

    def remove_stale(self) -> list[str]:
        return []  # nothing to remove: the next attempt overwrites a dead writer's objects

    # ------------------------------------------------------------------ failure records
    @_speaking(write=False)
    def failure_lines(self) -> Iterator[str]:
        for name in sorted(self.names(layout.FAILURES_DIR)):
            yield from self.read_text(f"{layout.FAILURES_DIR}/{name}").splitlines()

    @_speaking(write=True)
    def add_failures(self, records: Mapping[str, dict[str, Any]], complete: set[str]) -> None:
        """One new object per call (readers merge them, later records win)."""
        del complete  # readers drop ids that are complete
        if records:
            name = layout.staging_name(f"{time.strftime('%Y%m%dT%H%M%S')}", ".jsonl")
            self.fs.pipe_file(self._key(f"{layout.FAILURES_DIR}/{name}"),
                              layout.failure_text(dict(records)).encode())


def write_files(folder: Path, objects: Mapping[str, bytes]) -> None:
    """Write ``objects`` (relative names -> bytes) as files under ``folder`` ("" names the
    file ``folder`` itself)."""
    for rel, data in objects.items():
        target = folder / rel
        with full_disk_names(target):  # a write's error names no file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
