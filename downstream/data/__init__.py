"""Task datasets over (feature store, manifest): features, timestamps and targets on the feature grid."""

from downstream.data.tal import (
    DataError,
    TalDataset,
    TalItem,
    collate_tal,
    held_out_split,
)

__all__ = ["DataError", "TalDataset", "TalItem", "collate_tal", "held_out_split"]
