"""HDF5 payload of a store: ``store.json`` and one ``.h5`` file per video (why: layout.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import h5py
import numpy as np

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
    root_marker = ROOT_FILE

    @staticmethod
    def root_objects(attrs: dict[str, Any]) -> dict[str, bytes]:
        return {ROOT_FILE: json.dumps(attrs, indent=1, sort_keys=True).encode()}

    @staticmethod
    def video_marker(rel: str) -> str:
        return rel  # the file itself

    @staticmethod
    def encode_video(features: np.ndarray, timestamps: np.ndarray, attrs: dict[str, Any], *,
                     codec: str) -> dict[str, bytes]:
        """The video's file as bytes (named "": the video itself). Built in memory: HDF5
        writing to a full disk reports a page of library text and can crash the interpreter at
        exit (a segfault when its objects are freed), while a plain write raises one OSError
        naming the file."""
        rows = max(1, min(features.shape[0], CHUNK_BYTES // (features.shape[1] * features.itemsize)))
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as fh:
            fh.create_dataset("features", data=features, chunks=(rows, features.shape[1]),
                              **CODECS[codec])
            fh.create_dataset("timestamps", data=timestamps)
            for key, value in attrs.items():
                fh.attrs[key] = value
            fh.attrs["complete"] = True
        return {"": buffer.getvalue()}

    @staticmethod
    def complete_keys(location: Any) -> list[str]:
        return [n.removesuffix(".h5") for n in location.names(VIDEOS_DIR)
                if n.endswith(".h5") and not n.startswith(".")]

    @staticmethod
    def read_root_attrs(location: Any) -> dict[str, Any]:
        return json.loads(location.read_text(ROOT_FILE))

    @staticmethod
    def read_array_and_attrs(location: Any, rel: str, name: str
                             ) -> tuple[np.ndarray, dict[str, Any]]:
        """The array as stored and the video's attrs (which hold its digest), from one open."""
        # One open per read: nothing is shared across DataLoader worker forks.
        with h5py.File(location.h5_source(rel), "r") as fh:
            return fh[name][...], _attrs(fh)

    @staticmethod
    def read_attrs(location: Any, rel: str) -> dict[str, Any]:
        with h5py.File(location.h5_source(rel), "r") as fh:
            return _attrs(fh)

    @staticmethod
    def array_info(location: Any, rel: str, name: str) -> dict[str, Any]:
        with h5py.File(location.h5_source(rel), "r") as fh:
            return {"shape": tuple(fh[name].shape), "dtype": str(fh[name].dtype)}


def _attrs(fh: h5py.File) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in fh.attrs.items()}
