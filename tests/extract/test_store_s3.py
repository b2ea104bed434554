"""Feature stores on object storage (``s3://``), against a local S3 server (moto): the same
reads, writes, commit and resume guarantees as on a local disk (extract/store/location.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner

from extract.store import StoreError, StoreMismatchError, create_store, layout, open_store
from extract.store.export import export_features
from extract.store.feature_store import BACKENDS
from extract.store.location import location_of
from pipelines.main import cli
from tests.extract.test_export import SPEC, assert_same_store, make_manifest
from tests.extract.test_store_backends import extractor, feature_like

sys.path.insert(0, str(Path(__file__).parents[1] / "downstream"))
from tiny_data import write_tiny

SUFFIXES = (".zarr", ".h5")


def objects(url: str) -> list[str]:
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    root = url.split("://", 1)[1]
    return sorted(p[len(root) + 1:] for p in fs.find(root))


def write(writer, video_id: str, features: np.ndarray) -> None:
    writer.write_video(video_id, features, np.arange(float(len(features))),
                       num_frames=len(features), fps=25.0, duration=len(features) / 25.0)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_ids_attrs_and_failures_from_two_writers(s3_bucket, suffix):
    url = f"{s3_bucket}/runs/kinc{suffix}"
    first = create_store(url, extractor=extractor(), manifest_sha256="m")
    second = create_store(url, extractor=extractor(), manifest_sha256="m")  # another job
    odd = "v_Cricket/01 take 2"  # a slash and a space in the id
    write(first, odd, feature_like(5, 6, 0))
    write(second, "b", feature_like(3, 6, 1))
    first.record_failures({"lost": "no such file", "b": "decode error"})
    second.record_failures({"late": "corrupt"})
    store = open_store(url)
    assert store.path == url and store.video_ids() == ["b", odd]
    assert odd in store and "lost" not in store and store.staging_entries() == []
    np.testing.assert_array_equal(store.read_features(odd), feature_like(5, 6, 0))
    np.testing.assert_array_equal(store.read_timestamps("b"), np.arange(3.0))
    assert store.video_attrs(odd)["num_frames"] == 5 and store.array_info("b")["shape"] == (3, 6)
    # "b" is complete, so its failure no longer counts; both writers' records are merged
    assert store.failures() == {"lost": "no such file", "late": "corrupt"}
    assert not any("staging" in name or "creating" in name for name in objects(url))


def test_a_killed_writers_objects_are_invisible_then_replaced(s3_bucket):
    url = f"{s3_bucket}/s.zarr"
    writer = create_store(url, extractor=extractor(), manifest_sha256=None)
    location = location_of(url)
    half = BACKENDS["zarr"].encode_video(feature_like(4, 6, 2), np.arange(4.0),
                                        {"video_id": "half"}, codec="zstd")
    half.pop("zarr.json")  # killed before the marker went up
    location.fs.pipe({f"{location.root}/videos/half/{k}": v for k, v in half.items()})
    store = open_store(url)
    assert store.video_ids() == [] and "half" not in store
    assert store.staging_entries() == ["half"]
    write(writer, "half", feature_like(4, 6, 3))
    assert store.video_ids() == ["half"] and store.staging_entries() == []
    np.testing.assert_array_equal(store.read_features("half"), feature_like(4, 6, 3))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_committed_video_is_never_replaced(s3_bucket, suffix):
    """The marker is put with If-None-Match: a second writer that got past the existence
    check still cannot replace it."""
    url = f"{s3_bucket}/s{suffix}"
    writer = create_store(url, extractor=extractor(), manifest_sha256=None)
    write(writer, "v", feature_like(3, 6, 0))
    backend, location = BACKENDS[layout.backend_name(url)], location_of(url)
    rel = f"videos/v{backend.suffix}"
    other = backend.encode_video(feature_like(3, 6, 9), np.arange(3.0), {"video_id": "v"},
                                 codec=backend.default_codec)
    marker = backend.video_marker(rel)
    assert location._put_marker(marker, other[marker.removeprefix(rel).lstrip("/")]) is False
    np.testing.assert_array_equal(open_store(url).read_features("v"), feature_like(3, 6, 0))


def test_another_extractor_and_bad_addresses_are_refused_in_one_line(s3_bucket):
    url = f"{s3_bucket}/s.zarr"
    create_store(url, extractor=extractor(), manifest_sha256=None)
    with pytest.raises(StoreMismatchError, match="differs in \\['dim'\\]"):
        create_store(url, extractor=extractor(dim=7), manifest_sha256=None)
    with pytest.raises(StoreError, match="s3://no-such-bucket-here/s.zarr: object storage"):
        create_store("s3://no-such-bucket-here/s.zarr", extractor=extractor(),
                     manifest_sha256=None)
    with pytest.raises(StoreError, match="not a zarr feature store"):
        open_store(f"{s3_bucket}/missing.zarr")
    with pytest.raises(StoreError, match="a local path or an s3:// URL, not gs://"):
        open_store("gs://bucket/s.zarr")


def _export_in_child(manifest: Path, store: str) -> None:
    export_features(model_spec=SPEC, manifest=manifest, store=store, batch_size=2,
                    device="cpu", progress=False)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_export_killed_then_rerun_equals_a_local_export(tmp_path, s3_bucket, suffix):
    manifest = make_manifest(tmp_path, {f"v{i}": 40 + 8 * i for i in range(5)})
    local = tmp_path / f"local{suffix}"
    export_features(model_spec=SPEC, manifest=manifest, store=local, batch_size=2,
                    progress=False)
    url = f"{s3_bucket}/feats{suffix}"
    child = multiprocessing.get_context("fork").Process(target=_export_in_child,
                                                        args=(manifest, url))
    child.start()
    deadline = time.time() + 60
    while child.is_alive() and time.time() < deadline:
        try:
            if open_store(url).video_ids():
                break
        except StoreError:
            pass  # not created yet
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    partly = open_store(url).video_ids()
    assert len(partly) < 5, "the kill came after the export finished; make the videos longer"
    summary = export_features(model_spec=SPEC, manifest=manifest, store=url, batch_size=2,
                              progress=False)
    assert summary.skipped == len(partly) and summary.written == 5 - len(partly)
    assert_same_store(local, url)


def test_cli_inspect_convert_npy_and_stage_2_training_read_s3(tmp_path, s3_bucket):
    _, manifest, local = write_tiny(tmp_path / "tiny")
    url = f"{s3_bucket}/tiny/features.zarr"

    def run(*argv: str, expect: int = 0) -> str:
        result = CliRunner().invoke(cli, list(argv))
        assert result.exit_code == expect, (argv, result.output, result.exception)
        return result.output

    assert "copied 12 videos" in run("extract", "convert", str(local), url)
    assert "OK" in run("extract", "inspect", "--verify", url)
    assert "12 of 12 selected videos complete" in run("extract", "status", url, "--manifest",
                                                      str(manifest), "--shards", "2")
    run("extract", "convert", url, str(tmp_path / "back.h5"))
    assert_same_store(local, tmp_path / "back.h5")
    run("extract", "export-npy", url, str(tmp_path / "npy"))
    assert len(list((tmp_path / "npy").glob("*.npy"))) == 12
    outs = {}
    for name, features in (("local", str(local)), ("s3", url)):
        outs[name] = tmp_path / f"run-{name}"
        run("downstream", "train", "tal", "--method", "mil", "--features", features,
            "--manifest", str(manifest), "--set", "train.epochs=2", "--out", str(outs[name]),
            "--no-progress")
    results = [json.loads((outs[n] / "results.json").read_text()) for n in ("local", "s3")]
    assert results[0] == results[1]
    # a missing store on S3 is one line naming it
    output = run("downstream", "train", "tal", "--method", "mil", "--features",
                 f"{s3_bucket}/nothing.zarr", "--manifest", str(manifest), "--out",
                 str(tmp_path / "run-missing"), "--no-progress", expect=1)
    assert output.strip().splitlines()[-1].startswith(f"Error: {s3_bucket}/nothing.zarr")
