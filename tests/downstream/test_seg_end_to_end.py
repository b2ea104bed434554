"""Segmentation through the shared ground: targets on the grid, train, predict MS-TCN label
files at each video's frame rate, evaluate them against the manifest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifests.schema import Manifest, Segment, VideoRecord, write_manifest
from downstream.data.seg import BACKGROUND, SegDataset, frame_label_names, single_labels
from downstream.data.store_dataset import DataError
from downstream.data.synthetic import SyntheticFeatures, thumos_like_manifest, write_store
from downstream.metrics.segmentation import evaluate_files, read_label_folder
from downstream.seg import METHODS
from downstream.seg.task import steps_to_frames
from downstream.training import predict_run, train_run
from tests.downstream.tiny_data import write_tiny

TINY = ["train.epochs=3", "mstcn.num_layers=3", "mstcn.num_f_maps=8", "mstcn.num_stages=2",
        "ltcontext.num_layers=3", "ltcontext.model_dim=8", "ltcontext.num_stages=2",
        "poc.hidden_size=16", "poc.thres_hidden=8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    return root, *write_tiny(root)


def test_single_labels_background_last_and_first_class_wins_an_overlap():
    video = VideoRecord("v", None, "train", 10.0, 2.0, 20, ("a", "b"),
                        segments=(Segment("b", 2.0, 6.0), Segment("a", 4.0, 8.0)))
    labels = single_labels(video, ("a", "b"), np.array([1.0, 3.0, 5.0, 7.0, 9.0]))
    assert labels.tolist() == [2, 1, 0, 0, 2]
    frames = frame_label_names(video, ("a", "b"))
    assert len(frames) == 20 and frames[0] == BACKGROUND and frames[9] == "a"


def test_steps_to_frames_takes_the_nearest_clip_centre():
    steps = np.array([0, 1, 2])
    frames = steps_to_frames(steps, np.array([0.5, 1.5, 2.5]), num_frames=6, fps=2.0)
    assert frames.tolist() == [0, 0, 0, 1, 1, 2]  # frames at 0, .5, 1, 1.5, 2, 2.5 s
    assert steps_to_frames(np.array([4]), np.array([1.0]), 3, 1.0).tolist() == [4, 4, 4]


def test_dataset_pads_labels_with_the_ignore_index(tiny):
    _, manifest, _, store = tiny
    ids = [v.video_id for v in manifest.videos[:2]]
    ds = SegDataset(store, manifest, ids)
    batch = ds.collate([ds[0], ds[1]])
    lengths = batch["mask"].sum(1)
    assert batch["frame_labels"].dtype == torch.int64
    short = int(lengths.argmin())
    assert (batch["frame_labels"][short, int(lengths[short]):] == -100).all()
    assert batch["video_labels"].shape == (2, 3)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_predict_evaluate(tiny, method):
    root, manifest, manifest_dir, store = tiny
    run = root / f"run_{method}"
    results = train_run(task="seg", method=method, features=store, manifest=manifest_dir,
                        out=run, overrides=TINY, progress=False)
    assert results["epochs"] == 3 and 0 <= results["val_Acc"] <= 1
    out = predict_run(run, features=store, manifest=manifest_dir, out=root / f"pred_{method}",
                      progress=False)
    predicted = read_label_folder(out)
    test = [v for v in manifest.videos if v.split == "test"]
    assert set(predicted) == {v.video_id for v in test}
    assert all(len(predicted[v.video_id]) == v.num_frames for v in test)
    metrics = evaluate_files(manifest_dir, out, subset="test")
    assert set(metrics) >= {"Acc", "Edit", "F1@10", "F1@25", "F1@50"}


def test_mstcn_learns_to_segment(tmp_path):
    """On features with action signal, MS-TCN beats both the all-background answer and the
    per-step linear classifier in segmental F1 (temporal context removes flicker)."""
    manifest = thumos_like_manifest(num_videos=30, num_classes=3, seed=1, duration=(25.0, 40.0),
                                    instances=(2, 3), length=(5.0, 9.0))
    manifest_dir = write_manifest(manifest, tmp_path / "manifest")
    store = write_store(manifest, tmp_path / "f.zarr", SyntheticFeatures(dim=16), seed=1)
    scores = {}
    for method, extra in (("mstcn", ["mstcn.num_f_maps=16", "mstcn.num_layers=5"]),
                          ("linear", [])):
        run = tmp_path / method
        train_run(task="seg", method=method, features=store, manifest=manifest_dir, out=run,
                  overrides=["train.epochs=25", "train.lr=0.005", *extra], progress=False)
        out = predict_run(run, features=store, manifest=manifest_dir, out=tmp_path / f"p{method}",
                          progress=False)
        scores[method] = evaluate_files(manifest_dir, out, subset="test")
    test = [v for v in manifest.videos if v.split == "test"]
    frames = sum(v.num_frames for v in test)
    background = sum(frame_label_names(v, manifest.classes).count(BACKGROUND) for v in test)
    assert scores["mstcn"]["Acc"] > background / frames + 0.05
    assert scores["mstcn"]["F1@25"] > scores["linear"]["F1@25"]


def test_cli_train_predict_evaluate_and_missing_segments(tiny, tmp_path):
    from pipelines.main import cli

    _, manifest, manifest_dir, store = tiny
    run = tmp_path / "cli"
    args = ["downstream", "train", "seg", "--method", "mstcn", "--features", str(store),
            "--manifest", str(manifest_dir), "--out", str(run), "--no-progress"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("seg mstcn: best val Acc")
    pred = tmp_path / "pred"
    result = CliRunner().invoke(cli, ["downstream", "predict", str(run), "--features",
                                      str(store), "--manifest", str(manifest_dir), "--out",
                                      str(pred), "--checkpoint", "last", "--no-progress"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["downstream", "evaluate", "seg", "-g", str(manifest_dir),
                                      "-p", str(pred), "--subset", "test", "--json"])
    assert result.exit_code == 0, result.output and '"Acc"' in result.output
    # A manifest without segments: one line naming the videos, nothing written.
    bare = Manifest(manifest.meta, tuple(replace(v, segments=None) if v.split == "train" else v
                                         for v in manifest.videos))
    bare_dir = write_manifest(bare, tmp_path / "bare")
    args = [a if a != str(manifest_dir) else str(bare_dir) for a in args]
    args[args.index(str(run))] = str(tmp_path / "bare_run")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "have no segments" in result.output
    assert "train-" in result.output or manifest.videos[0].video_id in result.output
    assert not (tmp_path / "bare_run").exists()
    with pytest.raises(DataError, match="no segments"):
        train_run(task="seg", method="mstcn", features=store, manifest=bare_dir,
                  out=tmp_path / "r2", overrides=TINY, progress=False)
