"""Tools around the store: npy import/export, convert, combine alignment, inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifests.schema import ManifestMeta, VideoRecord, write_manifest
from extract.cli import extract as extract_cli
from extract.store import create_store, open_store
from extract.store.location import write_files
from extract.store.tools import align_features, combine_stores, convert_store, inspect_store
from extract.store.zarr_backend import ZarrBackend


def extractor(**changes):
    base = {"backbone": "fake", "weights_sha256": "a" * 64, "supervision": "kinc",
            "clip_frames": 16, "frame_stride": 1, "clip_step": 16, "fps": 25.0, "crops": 1,
            "dim": 4, "dtype": "float32"}
    return {**base, **changes}


def make_store(path, videos, **changes):
    writer = create_store(path, extractor=extractor(**changes), manifest_sha256=None)
    for video_id, (feats, ts) in videos.items():
        writer.write_video(video_id, feats, ts, num_frames=len(ts) * 16, fps=25.0,
                           duration=len(ts) * 0.64)
    return path


def rand(t, d, seed):
    return np.maximum(np.random.default_rng(seed).normal(size=(t, d)), 0).astype(np.float32)


def test_npy_import_export_round_trip(tmp_path):
    src = tmp_path / "npy"
    src.mkdir()
    arrays = {"video_test_0000004": rand(7, 4, 0), "video_test_0000006": rand(1, 4, 1)}
    for name, arr in arrays.items():
        np.save(src / f"{name}.npy", arr)
    result = CliRunner().invoke(extract_cli, [
        "import-npy", str(src), "--store", str(tmp_path / "s.zarr"), "--fps", "30",
        "--clip", "16x1", "--step", "4"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    assert store.video_ids() == sorted(arrays)
    assert store.extractor["clip_step"] == 4 and store.extractor["fps"] == 30.0
    # Row t is the clip starting at frame 4t; its centre is (4t + 8) / 30 s.
    np.testing.assert_allclose(store.read_timestamps("video_test_0000004"),
                               (np.arange(7) * 4 + 8) / 30)
    assert store.video_attrs("video_test_0000004")["num_frames"] == 28

    out = tmp_path / "out"
    result = CliRunner().invoke(extract_cli, ["export-npy", str(tmp_path / "s.zarr"), str(out)])
    assert result.exit_code == 0, result.output
    for name, arr in arrays.items():
        back = np.load(out / f"{name}.npy")
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, arr)
    meta = json.loads((out / "store_meta.json").read_text())
    assert meta["extractor"]["clip_step"] == 4


def test_import_npy_takes_each_videos_fps_from_a_json_map(tmp_path):
    src = tmp_path / "npy"
    src.mkdir()
    for name in ("a", "b"):
        np.save(src / f"{name}.npy", rand(5, 4, 0))
    rates = tmp_path / "fps.json"
    rates.write_text(json.dumps({"a": 25.0, "b": 30.0}))
    result = CliRunner().invoke(extract_cli, [
        "import-npy", str(src), "--store", str(tmp_path / "s.zarr"), "--fps", str(rates),
        "--clip", "16x1", "--step", "16"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    # 16-frame snippets at each video's own rate: centres (16 t + 8) / fps
    np.testing.assert_allclose(store.read_timestamps("a"), (np.arange(5) * 16 + 8) / 25)
    np.testing.assert_allclose(store.read_timestamps("b"), (np.arange(5) * 16 + 8) / 30)
    assert store.extractor["fps"] is None  # the store mixes rates
    assert store.video_attrs("b")["fps"] == 30.0


@pytest.mark.parametrize("rates,message", [({"a": 25.0}, "no fps for 1 video(s)"),
                                           ({"a": 25.0, "b": "fast"}, "'b' has fps 'fast'")])
def test_import_npy_checks_the_fps_map_before_writing(tmp_path, rates, message):
    src = tmp_path / "npy"
    src.mkdir()
    for name in ("a", "b"):
        np.save(src / f"{name}.npy", rand(5, 4, 0))
    (tmp_path / "fps.json").write_text(json.dumps(rates))
    result = CliRunner().invoke(extract_cli, [
        "import-npy", str(src), "--store", str(tmp_path / "s.zarr"), "--fps",
        str(tmp_path / "fps.json"), "--clip", "16x1", "--step", "16"])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "s.zarr").exists()  # nothing written


def test_import_npy_refuses_inconsistent_dims(tmp_path):
    src = tmp_path / "npy"
    src.mkdir()
    np.save(src / "a.npy", rand(3, 4, 0))
    np.save(src / "b.npy", rand(3, 5, 0))
    result = CliRunner().invoke(extract_cli, [
        "import-npy", str(src), "--store", str(tmp_path / "s.h5"), "--fps", "30",
        "--clip", "16x1", "--step", "16"])
    assert result.exit_code != 0 and "b.npy" in result.output and "(3, 5)" in result.output
    assert open_store(tmp_path / "s.h5").video_ids() == ["a"]  # what was written is kept


@pytest.mark.parametrize("src_suffix,dst_suffix", [(".zarr", ".h5"), (".h5", ".zarr")])
def test_convert_between_backends(tmp_path, src_suffix, dst_suffix):
    videos = {f"v{i}": (rand(3 + i, 4, i), np.arange(3.0 + i) + 0.5) for i in range(3)}
    src = make_store(tmp_path / f"a{src_suffix}", videos, dtype="float16")
    create_store(src, extractor=extractor(dtype="float16"),
                 manifest_sha256=None).record_failures({"bad": "corrupt"})
    assert convert_store(src, tmp_path / f"b{dst_suffix}") == 3
    a, b = open_store(src), open_store(tmp_path / f"b{dst_suffix}")
    assert b.extractor == a.extractor and b.video_ids() == a.video_ids()
    for video_id in a.video_ids():
        np.testing.assert_array_equal(a.read_features(video_id), b.read_features(video_id))
        np.testing.assert_array_equal(a.read_timestamps(video_id), b.read_timestamps(video_id))
        assert a.video_attrs(video_id) == b.video_attrs(video_id)
        assert b.array_info(video_id)["dtype"] == "float16"
    assert b.failures() == {"bad": "corrupt"}
    assert convert_store(src, tmp_path / f"b{dst_suffix}") == 0  # resumable: nothing left


def test_convert_refuses_a_destination_that_is_another_store(tmp_path):
    src = make_store(tmp_path / "a.zarr", {"v0": (rand(3, 4, 0), np.arange(3.0) + 0.5)})
    other = make_store(tmp_path / "other.zarr", {"w9": (rand(3, 4, 1), np.arange(3.0) + 0.5)})
    result = CliRunner().invoke(extract_cli, ["convert", str(src), str(other)])
    assert result.exit_code == 1 and "'w9'" in result.output and "another store" in result.output
    assert open_store(other).video_ids() == ["w9"]  # untouched
    CliRunner().invoke(extract_cli, ["convert", str(src), str(tmp_path / "b.h5")])
    again = CliRunner().invoke(extract_cli, ["convert", str(src), str(tmp_path / "b.h5")])
    assert again.exit_code == 0 and "copied 0 videos" in again.output
    assert "1 already there" in again.output


def test_align_features_by_hand():
    feats = np.array([[0.0, 10.0], [2.0, 20.0], [4.0, 40.0]], np.float32)
    times = np.array([1.0, 2.0, 3.0])
    target = np.array([0.0, 1.5, 2.0, 2.75, 9.0])
    np.testing.assert_allclose(align_features(feats, times, target, align="linear"),
                               [[0, 10], [1, 15], [2, 20], [3.5, 35], [4, 40]])
    np.testing.assert_array_equal(align_features(feats, times, target, align="nearest"),
                                  feats[[0, 0, 1, 2, 2]])
    np.testing.assert_array_equal(align_features(feats[:1], times[:1], target), feats[[0] * 5])


def test_combine_aligns_b_to_a(tmp_path):
    # A: 4 clips at 0.5 s spacing; B: "flow" at 1.0 s spacing, D=2.
    fa = rand(4, 4, 0)
    ta = np.array([0.25, 0.75, 1.25, 1.75])
    fb = np.array([[0.0, 1.0], [1.0, 3.0]], np.float32)
    tb = np.array([0.5, 1.5])
    a = make_store(tmp_path / "a.zarr", {"v": (fa, ta), "only_a": (fa, ta)})
    b = make_store(tmp_path / "b.h5", {"v": (fb, tb)}, backbone="flow", dim=2,
                   weights_sha256="f" * 64)
    result = CliRunner().invoke(extract_cli, ["combine", str(a), str(b),
                                              "--out", str(tmp_path / "c.zarr")])
    assert result.exit_code == 0, result.output
    c = open_store(tmp_path / "c.zarr")
    assert c.dim == 6 and c.video_ids() == ["v"]
    assert c.extractor["backbone"] == "fake+flow"
    got = c.read_features("v")
    np.testing.assert_array_equal(got[:, :4], fa)
    np.testing.assert_allclose(got[:, 4:], [[0, 1], [0.25, 1.5], [0.75, 2.5], [1, 3]])
    np.testing.assert_array_equal(c.read_timestamps("v"), ta)
    assert combine_stores(a, b, tmp_path / "c.zarr")["only_in_a"] == ["only_a"]


def test_inspect_reports_nan_failures_and_manifest_mismatch(tmp_path):
    bad = rand(3, 4, 0)
    bad[1, 2] = np.nan
    path = make_store(tmp_path / "s.zarr", {"ok": (rand(3, 4, 1), np.arange(3.0))})
    # The writer refuses NaN now; a store written before that may still hold some.
    write_files(path / "videos" / "nan", ZarrBackend.encode_video(
        bad, np.arange(3.0), {"video_id": "nan", "num_frames": 48, "fps": 25.0,
                              "duration": 1.92}, codec="zstd"))
    create_store(path, extractor=extractor(), manifest_sha256=None).record_failures(
        {"lost": "file does not exist"})
    report = inspect_store(path)
    assert report["num_videos"] == 2 and report["num_clips"] == 6
    assert report["failed"] == {"lost": "file does not exist"}
    assert not any("NaN" in p for p in report["problems"])  # only --verify reads values
    meta = ManifestMeta(dataset="t", classes=("a",), fps=25.0)
    records = [VideoRecord(video_id=v, path=None, split="test", duration=1.0, fps=25.0,
                           num_frames=25) for v in ("ok", "lost", "other")]
    write_manifest((meta, records), tmp_path / "m")
    report = inspect_store(path, verify=True, manifest=tmp_path / "m")
    assert any("NaN/Inf" in p and "'nan'" in p for p in report["problems"])
    assert report["manifest"]["missing"] == ["lost", "other"]
    assert report["manifest"]["extra"] == ["nan"]
    result = CliRunner().invoke(extract_cli, ["inspect", str(path), "--verify", "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["verified"] == 2
    clean = make_store(tmp_path / "clean.h5", {"ok": (rand(3, 4, 1), np.arange(3.0))})
    result = CliRunner().invoke(extract_cli, ["inspect", str(clean), "--verify"])
    assert result.exit_code == 0 and "OK" in result.output
