"""Task datasets over (feature store, manifest): features, timestamps and targets on the feature grid."""

from downstream.data.splits import held_out_split, split_ids
from downstream.data.store_dataset import (
    DataError,
    Item,
    StoreDataset,
    open_features,
    require_annotations,
)
from downstream.data.tal import TalDataset

__all__ = ["DataError", "Item", "StoreDataset", "TalDataset", "held_out_split", "open_features",
           "require_annotations", "split_ids"]
