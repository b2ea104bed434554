"""The feature store: the contract between stage 1 (export) and stage 2 (downstream).

``open_store(path) -> FeatureStore`` reads, ``create_store(path, extractor=..., manifest_sha256=...)
-> StoreWriter`` writes. The layout is documented in :mod:`extract.store.layout`.
"""

from extract.store.feature_store import (
    BACKENDS,
    FeatureStore,
    StoreWriter,
    create_store,
    open_store,
)
from extract.store.layout import StoreError, StoreMismatchError

__all__ = [
    "BACKENDS",
    "FeatureStore",
    "StoreError",
    "StoreMismatchError",
    "StoreWriter",
    "create_store",
    "open_store",
]
