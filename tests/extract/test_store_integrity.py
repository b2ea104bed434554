"""Feature store integrity: damaged or non-finite data is refused, never read back as numbers."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from extract.store import StoreError, create_store, layout, open_store, zarr_backend
from extract.store.tools import combine_stores, convert_store
from pipelines.main import cli

SUFFIX = {"zarr": ".zarr", "hdf5": ".h5"}
T, D = 40, 8


def extractor(**changes):
    base = {"backbone": "fake", "weights_sha256": "a" * 64, "supervision": "kinc",
            "clip_frames": 16, "frame_stride": 1, "clip_step": 16, "fps": 25.0, "crops": 1,
            "dim": D, "dtype": "float32"}
    return {**base, **changes}


def feats(seed: int, t: int = T) -> np.ndarray:
    """Strictly positive, so that a lost chunk (read as zeros) would look like data."""
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=(t, D)).astype(np.float32)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """8 rows per zarr chunk: a 40-clip video has 5 features chunk files."""
    monkeypatch.setattr(zarr_backend, "CHUNK_BYTES", 8 * D * 4)


def make_store(tmp_path, backend, ids=("a", "b", "c"), **kwargs):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None, **kwargs)
    for i, video_id in enumerate(ids):
        writer.write_video(video_id, feats(i), np.arange(T) * 0.64 + 0.32, num_frames=16 * T,
                           fps=25.0, duration=T * 0.64)
    return path


def video_path(path, video_id):
    suffix = ".h5" if layout.backend_name(path) == "hdf5" else ""
    return path / layout.VIDEOS_DIR / (layout.encode_id(video_id) + suffix)


def chunk(path, video_id, row_chunk=1):
    return video_path(path, video_id) / "features" / "c" / str(row_chunk) / "0"


def flip_two_bytes(file, offset):
    with open(file, "r+b") as fh:
        fh.seek(offset)
        data = bytearray(fh.read(2))
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


def hdf5_features_offset(file):
    """Byte offset of the features data inside the video's file (one chunk, uncompressed)."""
    with h5py.File(file, "r") as fh:
        dataset = fh["features"]
        # get_offset() is None for a chunked dataset: the data lives in its chunks.
        offset = dataset.id.get_offset()
        return offset if offset is not None else dataset.id.get_chunk_info(0).byte_offset


def assert_others_read(path, damaged):
    store = open_store(path)
    for i, video_id in enumerate(store.video_ids()):
        if video_id not in damaged:
            np.testing.assert_array_equal(store.read_features(video_id), feats(i))


# ----------------------------------------------------------------------------- (a) lost chunk
def test_lost_zarr_chunk_is_refused_naming_the_video(tmp_path):
    path = make_store(tmp_path, "zarr")
    chunk(path, "b").unlink()
    with pytest.raises(StoreError, match=r"video 'b' is damaged.*features differ from the sha256"
                       r".*inspect --verify"):
        open_store(path).read_features("b")
    assert_others_read(path, {"b"})


# ----------------------------------------------------------------------------- (b) flipped bytes
@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_flipped_bytes_in_zarr_chunk_are_refused(tmp_path, codec):
    path = make_store(tmp_path, "zarr", codec=codec)
    file = chunk(path, "b", 2)
    flip_two_bytes(file, file.stat().st_size // 2)
    with pytest.raises(StoreError, match="video 'b' is damaged"):
        open_store(path).read_features("b")
    assert_others_read(path, {"b"})


def test_zstd_checksum_catches_flipped_bytes_even_without_digest(tmp_path):
    """The codec's own checksum: a flipped chunk fails to decompress instead of decoding."""
    path = make_store(tmp_path, "zarr")
    meta = json.loads((video_path(path, "b") / "features" / "zarr.json").read_text())
    assert meta["codecs"][-1] == {"name": "zstd", "configuration": {"level": 3, "checksum": True}}
    strip_digests(path, "b")
    file = chunk(path, "b", 2)
    flip_two_bytes(file, file.stat().st_size // 2)
    with pytest.raises(StoreError, match=r"video 'b' is damaged \(RuntimeError"):
        open_store(path).read_features("b")


def test_flipped_bytes_in_hdf5_data_are_refused(tmp_path):
    path = make_store(tmp_path, "hdf5")
    assert open_store(path).attrs["codec"] == "none"
    file = video_path(path, "b")
    flip_two_bytes(file, hdf5_features_offset(file) + 4 * D * 10 + 1)  # inside clip 10
    with pytest.raises(StoreError, match="video 'b' is damaged.*features differ from the sha256"):
        open_store(path).read_features("b")
    assert_others_read(path, {"b"})


# ----------------------------------------------------------------------------- (c) broken files
def test_truncated_zarr_chunk_is_refused_and_others_still_read(tmp_path):
    path = make_store(tmp_path, "zarr")
    file = chunk(path, "b")
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(StoreError, match="video 'b' is damaged") as err:
        open_store(path).read_features("b")
    assert err.value.__cause__ is not None  # the codec's error, chained
    assert_others_read(path, {"b"})


def test_garbage_video_zarr_json_is_refused_and_others_still_read(tmp_path):
    path = make_store(tmp_path, "zarr")
    (video_path(path, "b") / "zarr.json").write_text("{not json")
    store = open_store(path)
    for read in (store.read_features, store.read_timestamps, store.video_attrs):
        with pytest.raises(StoreError, match=r"video 'b' is damaged \(JSONDecodeError"):
            read("b")
    assert_others_read(path, {"b"})


def test_truncated_hdf5_file_is_refused_and_others_still_read(tmp_path):
    path = make_store(tmp_path, "hdf5")
    file = video_path(path, "b")
    file.write_bytes(file.read_bytes()[:1000])
    store = open_store(path)
    for read in (store.read_features, store.video_attrs, store.array_info):
        with pytest.raises(StoreError, match=r"video 'b' is damaged \(OSError"):
            read("b")
    assert_others_read(path, {"b"})


# ----------------------------------------------------------------------------- (d) non-finite
@pytest.mark.parametrize("backend", sorted(SUFFIX))
def test_non_finite_values_are_refused_at_write(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    bad = feats(0)
    bad[12, 3] = bad[12, 5] = bad[30, 0] = np.nan
    bad[20, 1] = np.inf
    with pytest.raises(StoreError, match=rf"{path}: video 'v1' features hold 3 NaN values, "
                       r"first at clip 12; 1 infinite value, first at clip 20"):
        writer.write_video("v1", bad, np.arange(T, dtype=float), num_frames=1, fps=1, duration=1)
    ts = np.arange(T, dtype=float)
    ts[7] = np.inf
    with pytest.raises(StoreError, match="video 'v2' timestamps hold 1 infinite value, first at "
                       "clip 7"):
        writer.write_video("v2", feats(0), ts, num_frames=1, fps=1, duration=1)
    assert open_store(path).video_ids() == []


def test_float16_overflow_is_refused_at_write(tmp_path):
    writer = create_store(tmp_path / "s.zarr", extractor=extractor(dtype="float16"),
                          manifest_sha256=None)
    big = feats(0)
    big[4, 0] = 1e5
    with pytest.raises(StoreError, match="video 'v' features hold 1 infinite value, first at "
                       "clip 4 after the cast to float16"):
        writer.write_video("v", big, np.arange(T, dtype=float), num_frames=1, fps=1, duration=1)


def test_import_npy_refuses_nan_naming_the_video(tmp_path):
    src = tmp_path / "npy"
    src.mkdir()
    bad = feats(1)
    bad[5, 2] = np.nan
    np.save(src / "good.npy", feats(0))
    np.save(src / "nan.npy", bad)
    result = CliRunner().invoke(cli, ["extract", "import-npy", str(src), "--store",
                                      str(tmp_path / "s.zarr"), "--fps", "25", "--clip", "16x1",
                                      "--step", "16"])
    assert result.exit_code == 1
    assert "video 'nan' features hold 1 NaN value, first at clip 5" in result.output
    assert open_store(tmp_path / "s.zarr").video_ids() == ["good"]


# ----------------------------------------------------------------------------- (e) inspect
def damage_three(path):
    chunk(path, "a").unlink()
    (video_path(path, "b") / "zarr.json").write_text("garbage")
    flip_two_bytes(chunk(path, "d", 3), 20)


def test_inspect_verify_lists_every_damaged_video(tmp_path):
    path = make_store(tmp_path, "zarr", ids=("a", "b", "c", "d"))
    damage_three(path)
    result = CliRunner().invoke(cli, ["extract", "inspect", str(path), "--verify"])
    assert result.exit_code == 1, result.output
    for video_id in ("a", "b", "d"):
        assert f"damaged {video_id}: " in result.output
    assert "damaged c" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "3 damaged videos ('a', 'b', 'd')" in last

    result = CliRunner().invoke(cli, ["extract", "inspect", str(path), "--verify", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert sorted(report["damaged"]) == ["a", "b", "d"] and report["verified"] == 4
    assert "sha256" in report["damaged"]["a"] and "JSONDecodeError" in report["damaged"]["b"]


def test_inspect_without_verify_reports_unreadable_metadata(tmp_path):
    path = make_store(tmp_path, "zarr")
    (video_path(path, "c") / "features" / "zarr.json").write_text("garbage")
    result = CliRunner().invoke(cli, ["extract", "inspect", str(path)])
    assert result.exit_code == 1 and "damaged c: JSONDecodeError" in result.output


# ----------------------------------------------------------------------------- tools refuse
def test_convert_skips_damaged_videos_and_fails_naming_them(tmp_path):
    path = make_store(tmp_path, "zarr", ids=("a", "b", "c", "d"))
    damage_three(path)
    with pytest.raises(StoreError, match=r"3 damaged videos skipped \('a', 'b', 'd'\); 1 videos "
                       "copied"):
        convert_store(path, tmp_path / "out.h5")
    out = open_store(tmp_path / "out.h5")
    assert out.video_ids() == ["c"]
    np.testing.assert_array_equal(out.read_features("c"), feats(2))
    assert sorted(out.failures()) == ["a", "b", "d"]
    assert out.failures()["a"].startswith(f"damaged in {path}: ")


def test_export_npy_skips_damaged_videos_and_fails_naming_them(tmp_path):
    path = make_store(tmp_path, "zarr")
    chunk(path, "b").unlink()
    folder = tmp_path / "npy"
    result = CliRunner().invoke(cli, ["extract", "export-npy", str(path), str(folder)])
    assert result.exit_code == 1 and "1 damaged videos skipped ('b')" in result.output
    assert sorted(p.name for p in folder.glob("*.npy")) == ["a.npy", "c.npy"]
    meta = json.loads((folder / "store_meta.json").read_text())
    assert sorted(meta["videos"]) == ["a", "c"] and list(meta["damaged"]) == ["b"]
    assert "sha256_features" not in meta["videos"]["a"]


def test_combine_skips_damaged_videos_and_fails_naming_them(tmp_path):
    a = make_store(tmp_path / "x", "zarr")
    b = make_store(tmp_path / "y", "hdf5")
    flip_two_bytes(video_path(b, "a"), hdf5_features_offset(video_path(b, "a")))
    with pytest.raises(StoreError, match=r"1 damaged videos skipped \('a'\); 2 videos written"):
        combine_stores(a, b, tmp_path / "c.zarr")
    out = open_store(tmp_path / "c.zarr")
    assert out.video_ids() == ["b", "c"] and list(out.failures()) == ["a"]


# ----------------------------------------------------------------------------- (f) old stores
def strip_digests(path, video_id):
    """Make a video look like one written before digests existed."""
    final = video_path(path, video_id)
    if final.is_dir():
        meta = json.loads((final / "zarr.json").read_text())
        for key in layout.DIGEST_ATTRS.values():
            del meta["attributes"][key]
        (final / "zarr.json").write_text(json.dumps(meta))
    else:
        with h5py.File(final, "r+") as fh:
            for key in layout.DIGEST_ATTRS.values():
                del fh.attrs[key]


@pytest.mark.parametrize("backend", sorted(SUFFIX))
def test_video_without_digests_reads_unchecked_and_a_wrong_digest_is_refused(tmp_path,
                                                                            backend):
    path = make_store(tmp_path, backend)
    strip_digests(path, "a")
    store = open_store(path)
    np.testing.assert_array_equal(store.read_features("a"), feats(0))
    np.testing.assert_array_equal(store.read_timestamps("a"), np.arange(T) * 0.64 + 0.32)
    assert "sha256_features" not in store.video_attrs("a")
    final = video_path(path, "b")
    if backend == "zarr":
        meta = json.loads((final / "zarr.json").read_text())
        meta["attributes"]["sha256_timestamps"] = "0" * 64
        (final / "zarr.json").write_text(json.dumps(meta))
    else:
        with h5py.File(final, "r+") as fh:
            fh.attrs["sha256_timestamps"] = "0" * 64
    with pytest.raises(StoreError, match="video 'b' is damaged.*timestamps differ"):
        store.read_timestamps("b")


@pytest.mark.parametrize("backend", sorted(SUFFIX))
def test_digests_are_of_the_stored_bytes(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(dtype="float16"), manifest_sha256=None)
    ts = np.arange(T) * 0.5
    writer.write_video("v", feats(0), ts, num_frames=1, fps=1, duration=1)
    attrs = open_store(path).video_attrs("v")
    assert attrs["sha256_features"] == hashlib.sha256(
        feats(0).astype("<f2").tobytes()).hexdigest()
    assert attrs["sha256_timestamps"] == hashlib.sha256(ts.astype("<f8").tobytes()).hexdigest()
