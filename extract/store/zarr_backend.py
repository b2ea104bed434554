"""zarr v3 payload of a store: the root group's attrs and one group per video (see layout.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from data_manifests.errors import full_disk_names
from extract.store.layout import VIDEOS_DIR

# Codec name -> zarr v3 compressors. "zstd" (level 3) is the default: on feature-like data it
# halves the size (ratio 0.51 vs 0.78 for blosc-lz4) and reads as fast (benchmarks/store_io.py).
# Its checksum makes a chunk with flipped bytes fail to decompress instead of decoding to garbage.
CODECS: dict[str, Any] = {
    "zstd": lambda: (zarr.codecs.ZstdCodec(level=3, checksum=True),),
    "blosc-lz4": lambda: (zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),),
    "none": lambda: (),
}
CHUNK_BYTES = 1 << 20  # ~1 MiB per chunk along T


def chunk_rows(num_rows: int, row_bytes: int) -> int:
    return max(1, min(num_rows, CHUNK_BYTES // max(1, row_bytes)))


class ZarrBackend:
    name = "zarr"
    codecs = CODECS
    default_codec = "zstd"
    suffix = ""  # a video is a folder videos/<key>

    @staticmethod
    def init_root(folder: Path, attrs: dict[str, Any]) -> None:
        root = zarr.create_group(store=LocalStore(folder), attributes=attrs)
        root.create_group(VIDEOS_DIR)

    @staticmethod
    def is_root(folder: Path) -> bool:
        return (folder / "zarr.json").is_file()

    @staticmethod
    def read_root_attrs(folder: Path) -> dict[str, Any]:
        meta = json.loads((folder / "zarr.json").read_text())
        return dict(meta.get("attributes", {}))

    @staticmethod
    def write_video(target: Path, features: np.ndarray, timestamps: np.ndarray,
                    attrs: dict[str, Any], *, codec: str) -> None:
        """Write one video's group at ``target`` (a staging path); ``complete`` goes last."""
        with full_disk_names(target):  # zarr's store names no file
            group = zarr.create_group(store=LocalStore(target), attributes=attrs)
            rows = chunk_rows(features.shape[0], features.shape[1] * features.itemsize)
            group.create_array("features", data=features, chunks=(rows, features.shape[1]),
                               compressors=CODECS[codec]())
            group.create_array("timestamps", data=timestamps, chunks=(features.shape[0],),
                               compressors=CODECS[codec]())
            group.attrs.update({"complete": True})

    @staticmethod
    def commit(staged: Path, final: Path) -> bool:
        """Move a staged video into place; False (and staging removed) if already there."""
        try:
            os.rename(staged, final)
            return True
        except OSError:
            if not (final / "zarr.json").is_file():
                raise
            shutil.rmtree(staged, ignore_errors=True)
            return False

    @staticmethod
    def remove(final: Path) -> None:
        shutil.rmtree(final)

    @staticmethod
    def read_array_and_attrs(final: Path, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The array as stored and the video's attrs (which hold its digest)."""
        array = zarr.open_array(store=LocalStore(final, read_only=True), path=name, mode="r")
        return array[...], ZarrBackend.read_attrs(final)

    @staticmethod
    def read_attrs(final: Path) -> dict[str, Any]:
        meta = json.loads((final / "zarr.json").read_text())
        return dict(meta.get("attributes", {}))

    @staticmethod
    def array_info(final: Path, name: str) -> dict[str, Any]:
        meta = json.loads((final / name / "zarr.json").read_text())
        return {"shape": tuple(meta["shape"]), "dtype": str(meta["data_type"])}
