"""Feature store: round trips for every backend, atomic visibility, fingerprints, failures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from extract.store import (
    BACKENDS,
    StoreError,
    StoreMismatchError,
    create_store,
    layout,
    open_store,
)
from extract.store.location import write_files

SUFFIX = {"zarr": ".zarr", "hdf5": ".h5"}


def extractor(**changes):
    base = {"backbone": "fake", "weights_sha256": "a" * 64, "supervision": "kinc",
            "clip_frames": 16, "frame_stride": 1, "clip_step": 16, "fps": 25.0, "crops": 1,
            "dim": 6, "dtype": "float32"}
    return {**base, **changes}


def feature_like(t: int, d: int, seed: int) -> np.ndarray:
    """ReLU'd, temporally smooth (T, D) float32."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(t, d)), axis=0) / np.sqrt(np.arange(1, t + 1))[:, None]
    return np.maximum(x, 0).astype(np.float32)


VIDEOS = {"plain": 5, "with/slash and space": 1, ".dot": 300, "__dunder": 2, "ünï%code": 7}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, backend, dtype):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(dtype=dtype), manifest_sha256="m" * 64)
    written = {}
    for i, (video_id, t) in enumerate(VIDEOS.items()):
        feats, ts = feature_like(t, 6, i), np.arange(t) * 0.64 + 0.32
        writer.write_video(video_id, feats, ts, num_frames=16 * t, fps=25.0, duration=t * 0.64)
        written[video_id] = (feats, ts)
    writer.close()

    store = open_store(path)
    assert store.video_ids() == sorted(VIDEOS)
    assert store.dim == 6 and store.fps == 25.0
    assert store.extractor == extractor(dtype=dtype)
    assert store.attrs["manifest_sha256"] == "m" * 64
    assert store.attrs["schema_version"] == layout.SCHEMA_VERSION
    for video_id, (feats, ts) in written.items():
        got = store.read_features(video_id)
        assert got.dtype == np.float32 and got.shape == feats.shape
        np.testing.assert_array_equal(got, feats.astype(dtype).astype(np.float32))
        got_ts = store.read_timestamps(video_id)
        assert got_ts.dtype == np.float64
        np.testing.assert_array_equal(got_ts, ts)
        attrs = store.video_attrs(video_id)
        assert attrs["num_frames"] == 16 * VIDEOS[video_id]
        assert attrs["fps"] == 25.0 and attrs["duration"] == pytest.approx(VIDEOS[video_id] * 0.64)
        assert attrs["complete"] is True and attrs["video_id"] == video_id
        assert store.array_info(video_id)["dtype"] == dtype
    with pytest.raises(KeyError, match="nope"):
        store.read_features("nope")


@pytest.mark.parametrize("codec", ["zstd", "blosc-lz4", "none"])
def test_zarr_codecs_round_trip(tmp_path, codec):
    path = tmp_path / "s.zarr"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None, codec=codec)
    feats = feature_like(2000, 6, 0)  # several chunks along T
    writer.write_video("v", feats, np.arange(2000.0), num_frames=1, fps=1.0, duration=1.0)
    assert open_store(path).attrs["codec"] == codec
    np.testing.assert_array_equal(open_store(path).read_features("v"), feats)


def test_unknown_suffix_and_codec_are_refused(tmp_path):
    with pytest.raises(StoreError, match="suffix"):
        create_store(tmp_path / "s.npz", extractor=extractor(), manifest_sha256=None)
    with pytest.raises(StoreError, match="codec 'lz9'"):
        create_store(tmp_path / "s.zarr", extractor=extractor(), manifest_sha256=None,
                     codec="lz9")
    with pytest.raises(StoreError, match="lacks"):
        create_store(tmp_path / "t.zarr", extractor={"backbone": "x"}, manifest_sha256=None)
    with pytest.raises(StoreError, match="not a zarr feature store"):
        open_store(tmp_path / "missing.zarr")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_fingerprint_mismatch_refused_showing_both(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    writer.write_video("v", feature_like(3, 6, 0), np.arange(3.0), num_frames=48, fps=25.0,
                       duration=1.9)
    with pytest.raises(StoreMismatchError) as err:
        create_store(path, extractor=extractor(weights_sha256="b" * 64), manifest_sha256=None)
    assert "a" * 64 in str(err.value) and "b" * 64 in str(err.value)
    assert "weights_sha256" in str(err.value)
    # Nothing was lost; the same fingerprint reopens.
    again = create_store(path, extractor=extractor(), manifest_sha256=None)
    assert again.done_ids() == {"v"}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_write_rejects_bad_shapes_and_never_overwrites(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    with pytest.raises(StoreError, match="dim is 6"):
        writer.write_video("v", np.zeros((3, 5)), np.arange(3.0), num_frames=1, fps=1, duration=1)
    with pytest.raises(StoreError, match="timestamps shape"):
        writer.write_video("v", np.zeros((3, 6)), np.arange(2.0), num_frames=1, fps=1, duration=1)
    first = feature_like(4, 6, 1)
    writer.write_video("v", first, np.arange(4.0), num_frames=1, fps=1, duration=1)
    writer.write_video("v", first + 1, np.arange(4.0), num_frames=1, fps=1, duration=1)
    np.testing.assert_array_equal(open_store(path).read_features("v"), first)
    assert open_store(path).staging_entries() == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_incomplete_video_is_invisible_and_cleaned(tmp_path, backend):
    """A writer killed mid-video leaves only a staging entry: invisible, removed on reopen."""
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    impl = BACKENDS[backend]
    pid = _dead_pid()
    import socket

    name = f"{layout.encode_id('half')}#{socket.gethostname()}#{pid}#0000{impl.suffix}"
    write_files(path / layout.STAGING_DIR / name, impl.encode_video(
        feature_like(3, 6, 0), np.arange(3.0),
        {"video_id": "half", "num_frames": 1, "fps": 1.0, "duration": 1.0},
        codec=impl.default_codec))
    # A live writer's staging entry (this process) must survive the cleanup.
    live = layout.staging_name(layout.encode_id("live"), impl.suffix)
    (path / layout.STAGING_DIR / live).mkdir()
    store = open_store(path)
    assert store.video_ids() == [] and "half" not in store
    assert sorted(store.staging_entries()) == sorted([name, live])
    create_store(path, extractor=extractor(), manifest_sha256=None)
    assert store.staging_entries() == [live]
    writer.write_video("half", feature_like(3, 6, 0), np.arange(3.0), num_frames=1, fps=1,
                       duration=1)
    assert store.video_ids() == ["half"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_failures_file_merges_and_forgets_recovered_videos(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    writer.record_failures({"a": "missing file", "b": "corrupt"})
    assert open_store(path).failures() == {"a": "missing file", "b": "corrupt"}
    writer.write_video("a", feature_like(2, 6, 0), np.arange(2.0), num_frames=1, fps=1,
                       duration=1)
    assert open_store(path).failures() == {"b": "corrupt"}  # a recovered
    writer.record_failures({"c": "too short"})
    lines = (path / layout.FAILURES_FILE).read_text().splitlines()
    assert [line.split('"video_id": ')[1][:3] for line in lines] == ['"b"', '"c"']


class _ReadDataset(torch.utils.data.Dataset):
    def __init__(self, path):
        self.store = open_store(path)
        self.ids = self.store.video_ids()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return torch.from_numpy(self.store.read_features(self.ids[i])).sum()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_dataloader_with_two_workers(tmp_path, backend):
    path = tmp_path / f"s{SUFFIX[backend]}"
    writer = create_store(path, extractor=extractor(), manifest_sha256=None)
    expected = []
    for i in range(8):
        feats = feature_like(10 + i, 6, i)
        writer.write_video(f"v{i}", feats, np.arange(10.0 + i), num_frames=1, fps=1, duration=1)
        expected.append(feats.sum(dtype=np.float32))
    dataset = _ReadDataset(path)
    dataset.store.read_features("v0")  # the parent touched the store before forking
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_encode_id_round_trips_and_is_a_safe_name():
    for video_id in ["a/b", "..", ".", "__x", "a b#c%", "v_01.mp4"]:
        key = layout.encode_id(video_id)
        assert "/" not in key and "#" not in key and key[0] not in "._"
        assert layout.decode_id(key) == video_id
