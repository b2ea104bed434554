"""HDF5 payload of a store: ``store.json`` and one ``.h5`` file per video (why: layout.py)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_manifests.errors import full_disk_names
from extract.store.layout import VIDEOS_DIR

ROOT_FILE = "store.json"
# Codec name -> h5py dataset keyword arguments (only filters that ship with h5py).
CODECS: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "lzf": {"compression": "lzf", "shuffle": True},
    "none": {},
}
CHUNK_BYTES = 1 << 20


class Hdf5Backend:
    name = "hdf5"
    codecs = CODECS
    # Uncompressed: h5py's lzf / gzip filters cut reads ~5x (benchmarks/store_io.py) for 25-40%
    # less disk; the compressed default backend is zarr.
    default_codec = "none"
    suffix = ".h5"  # a video is a file videos/<key>.h5

    @staticmethod
    def init_root(folder: Path, attrs: dict[str, Any]) -> None:
        folder.mkdir(parents=True)
        (folder / VIDEOS_DIR).mkdir()
        (folder / ROOT_FILE).write_text(json.dumps(attrs, indent=1, sort_keys=True))

    @staticmethod
    def is_root(folder: Path) -> bool:
        return (folder / ROOT_FILE).is_file()

    @staticmethod
    def read_root_attrs(folder: Path) -> dict[str, Any]:
        return json.loads((folder / ROOT_FILE).read_text())

    @staticmethod
    def write_video(target: Path, features: np.ndarray, timestamps: np.ndarray,
                    attrs: dict[str, Any], *, codec: str) -> None:
        """Write one video's file at ``target`` (a staging path); ``complete`` goes last."""
        rows = max(1, min(features.shape[0], CHUNK_BYTES // (features.shape[1] * features.itemsize)))
        # Built in memory, then written with a plain write: HDF5 writing to a full disk reports
        # a page of library text and can crash the interpreter at exit (a segfault when its
        # objects are freed), while a plain write raises one OSError naming the file.
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as fh:
            fh.create_dataset("features", data=features, chunks=(rows, features.shape[1]),
                              **CODECS[codec])
            fh.create_dataset("timestamps", data=timestamps)
            for key, value in attrs.items():
                fh.attrs[key] = value
            fh.attrs["complete"] = True
        with full_disk_names(target):  # a write's error names no file
            target.write_bytes(buffer.getbuffer())

    @staticmethod
    def commit(staged: Path, final: Path) -> bool:
        """Link a staged file into place (fails if present: never overwrites); drop staging."""
        try:
            os.link(staged, final)
            return True
        except FileExistsError:
            return False
        finally:
            staged.unlink(missing_ok=True)

    @staticmethod
    def remove(final: Path) -> None:
        final.unlink()

    @staticmethod
    def read_array_and_attrs(final: Path, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The array as stored and the video's attrs (which hold its digest), from one open."""
        # One open per read: nothing is shared across DataLoader worker forks.
        with h5py.File(final, "r") as fh:
            return fh[name][...], _attrs(fh)

    @staticmethod
    def read_attrs(final: Path) -> dict[str, Any]:
        with h5py.File(final, "r") as fh:
            return _attrs(fh)

    @staticmethod
    def array_info(final: Path, name: str) -> dict[str, Any]:
        with h5py.File(final, "r") as fh:
            return {"shape": tuple(fh[name].shape), "dtype": str(fh[name].dtype)}


def _attrs(fh: h5py.File) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in fh.attrs.items()}
