"""zarr v3 payload of a store: the root group's attrs and one group per video (see layout.py).

A video is encoded in memory into the objects zarr would write (``zarr.json`` of the group and
of each array, one object per chunk); the location (location.py) commits them, the group's
``zarr.json`` last, so that the same bytes go to a local folder or to object storage.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import zarr
from zarr.storage import MemoryStore

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
MARKER = "zarr.json"  # a group's metadata: the root's, and each video's commit marker


def chunk_rows(num_rows: int, row_bytes: int) -> int:
    return max(1, min(num_rows, CHUNK_BYTES // max(1, row_bytes)))


def _objects(build) -> dict[str, bytes]:
    """Run ``build(store)`` on an in-memory zarr store; its objects, the top marker last."""
    written: dict[str, Any] = {}
    build(MemoryStore(store_dict=written))
    objects = {key: buffer.to_bytes() for key, buffer in sorted(written.items())}
    objects[MARKER] = objects.pop(MARKER)
    return objects


class ZarrBackend:
    name = "zarr"
    codecs = CODECS
    default_codec = "zstd"
    suffix = ""  # a video is a folder videos/<key>
    root_marker = MARKER

    @staticmethod
    def root_objects(attrs: dict[str, Any]) -> dict[str, bytes]:
        def build(store: MemoryStore) -> None:
            zarr.create_group(store=store, attributes=attrs).create_group(VIDEOS_DIR)

        return _objects(build)

    @staticmethod
    def video_marker(rel: str) -> str:
        return f"{rel}/{MARKER}"

    @staticmethod
    def encode_video(features: np.ndarray, timestamps: np.ndarray, attrs: dict[str, Any], *,
                     codec: str) -> dict[str, bytes]:
        """One video's objects, named relative to its folder; its ``zarr.json`` last."""
        def build(store: MemoryStore) -> None:
            group = zarr.create_group(store=store, attributes={**attrs, "complete": True})
            rows = chunk_rows(features.shape[0], features.shape[1] * features.itemsize)
            group.create_array("features", data=features, chunks=(rows, features.shape[1]),
                               compressors=CODECS[codec]())
            group.create_array("timestamps", data=timestamps, chunks=(features.shape[0],),
                               compressors=CODECS[codec]())

        return _objects(build)

    @staticmethod
    def complete_keys(location: Any) -> list[str]:
        if location.renames:  # videos/ of a local folder holds committed videos only
            return [n for n in location.names(VIDEOS_DIR)
                    if not n.startswith(".") and n != MARKER]
        return [rel.split("/")[-2] for rel in location.glob(f"{VIDEOS_DIR}/*/{MARKER}")]

    @staticmethod
    def read_root_attrs(location: Any) -> dict[str, Any]:
        return dict(json.loads(location.read_text(MARKER)).get("attributes", {}))

    @staticmethod
    def read_array_and_attrs(location: Any, rel: str, name: str
                             ) -> tuple[np.ndarray, dict[str, Any]]:
        """The array as stored and the video's attrs (which hold its digest)."""
        array = zarr.open_array(store=location.zarr_store(rel), path=name, mode="r")
        return array[...], ZarrBackend.read_attrs(location, rel)

    @staticmethod
    def read_attrs(location: Any, rel: str) -> dict[str, Any]:
        return dict(json.loads(location.read_text(f"{rel}/{MARKER}")).get("attributes", {}))

    @staticmethod
    def array_info(location: Any, rel: str, name: str) -> dict[str, Any]:
        meta = json.loads(location.read_text(f"{rel}/{name}/{MARKER}"))
        return {"shape": tuple(meta["shape"]), "dtype": str(meta["data_type"])}
