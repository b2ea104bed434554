"""`data.train_split`: training on another split than "train" (THUMOS'14 trains on "val"), with
checkpoints selected on a held-out part of it."""

from __future__ import annotations

from dataclasses import replace

import pytest

import downstream.tal.task as tal_task_module
from data_manifests.schema import Manifest, write_manifest
from downstream.data import DataError, split_ids
from downstream.data.synthetic import SyntheticFeatures, thumos_like_manifest, write_store
from downstream.training import train_run

TINY = ["train.epochs=1", "train.batch_size=4", "data.max_snippets=24", "mil.hidden=8"]


def thumos_style(num_videos: int = 20) -> Manifest:
    """Every non-test video in split "val", as the THUMOS'14 manifest has it."""
    manifest = thumos_like_manifest(num_videos=num_videos, num_classes=3, seed=0,
                                    duration=(25.0, 40.0), instances=(1, 2), length=(3.0, 6.0))
    videos = tuple(v if v.split == "test" else replace(v, split="val") for v in manifest.videos)
    return Manifest(manifest.meta, videos)


def test_training_on_val_holds_out_a_deterministic_disjoint_part_of_it():
    manifest = thumos_style(40)
    val_ids = {v.video_id for v in manifest.videos if v.split == "val"}
    test_ids = {v.video_id for v in manifest.videos if v.split == "test"}
    train, held = split_ids(manifest, "val", 0.2)
    assert (train, held) == split_ids(manifest, "val", 0.2)  # deterministic
    assert train and held and not set(train) & set(held)
    assert set(train) | set(held) == val_ids and not (set(train) | set(held)) & test_ids
    assert len(val_ids) == 32 and len(held) == 6  # round(0.2 * 32): the asked share
    # The choice depends on the ids only: the same videos stay held out in a smaller manifest
    # (31 videos: round(0.2 * 31) is 6 again).
    fewer = Manifest(manifest.meta, tuple(v for v in manifest.videos if v.video_id != train[0]))
    assert split_ids(fewer, "val", 0.2)[1] == held
    # A larger fraction holds out more of the same split.
    assert len(split_ids(manifest, "val", 0.5)[1]) > len(held)


def test_default_split_still_validates_on_val_and_names_missing_splits():
    manifest = thumos_like_manifest(num_videos=20, num_classes=3, seed=0)
    train, val = split_ids(manifest)
    assert set(train) == {v.video_id for v in manifest.videos if v.split == "train"}
    assert set(val) == {v.video_id for v in manifest.videos if v.split == "val"}
    with pytest.raises(DataError, match=r"no video in split 'training'.*splits: test, train, val"):
        split_ids(manifest, "training")
    with pytest.raises(DataError, match="data.train_split=test"):
        split_ids(manifest, "test")
    with pytest.raises(DataError, match=r"no video in split 'train'.*splits: test, val"):
        split_ids(thumos_style())  # THUMOS'14 without data.train_split=val: a clear error
    no_val = Manifest(manifest.meta, tuple(v for v in manifest.videos if v.split != "val"))
    with pytest.raises(DataError, match=r"no 'extra' videos to hold out.*splits: test, train"):
        split_ids(no_val, "extra")


def test_train_tal_trains_on_the_rest_and_selects_on_the_held_out_part(tmp_path, monkeypatch):
    manifest = thumos_style()
    manifest_dir = write_manifest(manifest, tmp_path / "manifest")
    store = write_store(manifest, tmp_path / "features.zarr", SyntheticFeatures(dim=8), seed=0)
    expected_train, expected_held = split_ids(manifest, "val", 0.2)
    made: list[tuple[list[str], bool]] = []
    real = tal_task_module.TalDataset

    def recording(store, manifest, video_ids, **kwargs):
        made.append((list(video_ids), kwargs.get("random_crop", False)))
        return real(store, manifest, video_ids, **kwargs)

    monkeypatch.setattr(tal_task_module.TalTask, "dataset_class", staticmethod(recording))
    results = train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=tmp_path / "run",
                        overrides=[*TINY, "data.train_split=val"], progress=False)
    assert (results["train_split"], results["epochs"]) == ("val", 1)
    assert (results["train_videos"], results["val_videos"]) == (len(expected_train),
                                                                len(expected_held))
    # The cropped (optimised) dataset holds exactly the rest; the held-out part is evaluated.
    assert [ids for ids, crop in made if crop] == [expected_train]
    assert expected_held in [ids for ids, crop in made if not crop]
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_select_split_names_the_selection_split_and_warns_for_test(caplog):
    manifest = thumos_like_manifest(num_videos=20, num_classes=3, seed=0)
    train, select = split_ids(manifest, "train", 0.2, select_split="test")
    assert train == sorted(v.video_id for v in manifest.videos if v.split == "train")
    assert select == sorted(v.video_id for v in manifest.videos if v.split == "test")
    assert "optimistic" in caplog.text
    with pytest.raises(DataError, match="select_split=train"):
        split_ids(manifest, "train", 0.2, select_split="train")
