"""TalDataset over a store and a manifest: targets on the feature grid, padding, crops, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_manifests.schema import Manifest, ManifestMeta, Point, Segment, VideoRecord
from downstream.data import DataError, TalDataset, held_out_split
from downstream.data.tal import point_targets


class FakeStore:
    """In-memory stand-in with the read API of extract.store.FeatureStore."""

    def __init__(self, videos: dict[str, np.ndarray], dim: int, step: float = 1.0):
        self.dim, self.step, self.videos = dim, step, videos
        self.path = "fake.zarr"

    def video_ids(self) -> list[str]:
        return sorted(self.videos)

    def read_features(self, video_id: str) -> np.ndarray:
        return self.videos[video_id]

    def read_timestamps(self, video_id: str) -> np.ndarray:
        return (np.arange(len(self.videos[video_id])) + 0.5) * self.step


def make_manifest(points: bool = True) -> Manifest:
    classes = ("a", "b", "c")
    videos = (
        VideoRecord("v1", None, "train", 10.0, 30.0, 300, ("a",), (Segment("a", 2.0, 4.0),),
                    (Point("a", 3.2),) if points else None),
        VideoRecord("v2", None, "train", 6.0, 30.0, 180, ("b", "c"),
                    (Segment("b", 0.0, 1.0), Segment("c", 4.0, 6.0)),
                    (Point("b", 0.4), Point("c", 5.9)) if points else None),
    )
    return Manifest(ManifestMeta("toy", classes), videos)


def make_store(dim: int = 4) -> FakeStore:
    rng = np.random.default_rng(0)
    return FakeStore({"v1": rng.normal(size=(10, dim)).astype(np.float32),
                      "v2": rng.normal(size=(6, dim)).astype(np.float32)}, dim)


def test_targets_on_the_feature_grid():
    ds = TalDataset(make_store(), make_manifest(), ["v1", "v2"], needs=("points",))
    item = ds[0]
    assert item.features.shape == (10, 4)
    assert item.targets["video_labels"].tolist() == [1, 0, 0]
    # Clip centres 0.5, 1.5, ...: 2.5 and 3.5 lie in [2, 4].
    assert np.flatnonzero(item.targets["snippet_labels"][:, 0].numpy()).tolist() == [2, 3]
    # The point at 3.2 s is nearest to the centre 3.5 (index 3).
    assert np.flatnonzero(item.targets["point_labels"][:, 0].numpy()).tolist() == [3]
    item2 = ds[1]
    assert item2.targets["video_labels"].tolist() == [0, 1, 1]
    assert item2.targets["point_labels"][0, 1] == 1 and item2.targets["point_labels"][5, 2] == 1
    assert item2.targets["point_labels"].sum() == 2


def test_collate_pads_and_masks():
    ds = TalDataset(make_store(), make_manifest(), ["v1", "v2"])
    batch = ds.collate([ds[0], ds[1]])
    assert batch["features"].shape == (2, 10, 4)
    assert batch["mask"].sum(1).tolist() == [10, 6]
    assert torch.all(batch["features"][1, 6:] == 0)
    assert batch["snippet_labels"].shape == (2, 10, 3)
    assert batch["point_labels"] is None  # not asked for
    assert batch["video_id"] == ["v1", "v2"]


def test_random_crops_have_fixed_length_and_aligned_targets():
    store = make_store()
    ds = TalDataset(store, make_manifest(), ["v1"], max_snippets=4, random_crop=True, seed=3,
                    needs=("points",))
    offsets = set()
    for _ in range(20):
        item = ds[0]
        assert item.features.shape == (4, 4)
        offsets.add(item.offset)
        np.testing.assert_array_equal(item.features.numpy(),
                                      store.videos["v1"][item.offset:item.offset + 4])
        expected = [t - item.offset for t in (2, 3) if item.offset <= t < item.offset + 4]
        assert np.flatnonzero(item.targets["snippet_labels"][:, 0].numpy()).tolist() == expected
    assert len(offsets) > 1
    fixed = TalDataset(store, make_manifest(), ["v1"], max_snippets=4)
    assert fixed[0].offset == 0 and fixed[0].features.shape[0] == 4
    whole = TalDataset(store, make_manifest(), ["v1"], max_snippets=0)
    assert whole[0].features.shape[0] == 10


def test_points_outside_a_crop_are_dropped():
    video = make_manifest().videos[0]
    times = np.array([6.5, 7.5, 8.5])
    assert point_targets(video, ("a", "b", "c"), times).sum() == 0


def test_store_missing_videos_lists_them():
    store = FakeStore({"v1": np.zeros((10, 4), np.float32)}, 4)
    with pytest.raises(DataError, match=r"missing 1 video.*v2"):
        TalDataset(store, make_manifest(), ["v1", "v2"])


def test_feature_dimension_mismatch_names_the_video():
    store = make_store()
    store.videos["v2"] = np.zeros((6, 5), np.float32)
    ds = TalDataset(store, make_manifest(), ["v1", "v2"])
    with pytest.raises(DataError, match=r"'v2'.*\(6, 5\).*dim=4"):
        ds[1]


def test_manifest_without_points_is_refused_for_point_methods():
    with pytest.raises(DataError, match="no points"):
        TalDataset(make_store(), make_manifest(points=False), ["v1", "v2"], needs=("points",))


def test_held_out_split_is_deterministic_and_disjoint():
    videos = tuple(VideoRecord(f"id{i}", None, "train", 5.0, 30.0, 150, ("a",)) for i in range(50))
    manifest = Manifest(ManifestMeta("toy", ("a",)), videos)
    train, val = held_out_split(manifest, 0.2)
    assert (train, val) == held_out_split(manifest, 0.2)
    assert not set(train) & set(val) and len(train) + len(val) == 50
    assert 3 <= len(val) <= 20
