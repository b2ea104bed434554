"""The feature store: the contract between stage 1 (export) and stage 2 (downstream).

``open_store(path) -> FeatureStore`` reads, ``create_store(path, extractor=..., manifest_sha256=...)
-> StoreWriter`` writes; a store is a local path or an ``s3://`` URL. The layout is documented in
:mod:`extract.store.layout`, how a video is committed on each kind of storage in
:mod:`extract.store.location`.
"""

from extract.store.feature_store import (
    BACKENDS,
    FeatureStore,
    StoreWriter,
    create_store,
    open_store,
)
from extract.store.layout import StorageError, StoreError, StoreMismatchError

__all__ = [
    "BACKENDS",
    "FeatureStore",
    "StorageError",
    "StoreError",
    "StoreMismatchError",
    "StoreWriter",
    "create_store",
    "open_store",
]
