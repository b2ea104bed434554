"""`weakfeat extract features`: values, padding, failures, shards, SIGKILL + resume, dask."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifests.schema import ManifestMeta, VideoRecord, load_manifest, write_manifest
from data_manifests.video_reader import read_frames
from extract.cli import extract as extract_cli
from extract.clip_grid import in_shard
from extract.store import layout, open_store
from extract.store.export import (
    ClipGeometry,
    ModelSpec,
    cached_model,
    clip_starts,
    clip_timestamps,
    export_features,
)
from extract.transforms import prepare_clip

FPS = 10


def make_video(path: Path, num_frames: int, seed: int, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = size + 8, size, "yuv420p"
        stream.options = {"g": "8"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 2 * i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_manifest(root: Path, lengths: dict[str, int]) -> Path:
    """Videos by id -> frames; 0 makes an empty file, -1 a corrupt one, -2 none at all."""
    (root / "videos").mkdir(parents=True)
    records = []
    for i, (video_id, n) in enumerate(lengths.items()):
        path = root / "videos" / f"{video_id}.mp4"
        if n > 0:
            make_video(path, n, seed=i)
        elif n == 0:
            path.write_bytes(b"")
        elif n == -1:
            path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
        records.append(VideoRecord(video_id=video_id, path=f"videos/{video_id}.mp4",
                                   split="test" if i % 3 else "train",
                                   duration=max(n, 1) / FPS, fps=FPS, num_frames=max(n, 1)))
    write_manifest((ManifestMeta(dataset="tiny-export", classes=("a",), fps=FPS), records), root)
    return root


@pytest.fixture(scope="module")
def good_manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    return make_manifest(root, {"long": 70, "short": 5, "exact": 15, "mid": 40})


SPEC = ModelSpec(backbone="x3d-tiny")


def direct_features(path: Path, geometry: ClipGeometry, num_frames: int, crops: int = 1
                    ) -> np.ndarray:
    """The definition: read each clip, prepare it, forward it alone."""
    from extract.transforms import normalize, resize_short_side, three_crops, to_float01

    model, _ = cached_model(SPEC)
    spec = model.input_spec
    rows = []
    with torch.inference_mode():
        for start in clip_starts(num_frames, geometry):
            idx = [min(int(start) + j * geometry.frame_stride, num_frames - 1)
                   for j in range(geometry.clip_frames)]
            clip = read_frames(path, idx)
            if crops == 1:
                batch = prepare_clip(clip, spec, train=False)[None]
            else:
                resized = resize_short_side(to_float01(clip), spec.short_side)
                batch = torch.stack([normalize(c, spec.mean, spec.std)
                                     for c in three_crops(resized, spec.crop_size)])
            rows.append(model.forward_features(batch).mean(0).numpy())
    return np.stack(rows)


def test_clip_geometry_by_hand():
    geo = ClipGeometry(clip_frames=8, frame_stride=2, step=16)  # span 15
    np.testing.assert_array_equal(clip_starts(70, geo), [0, 16, 32, 48, 64])  # 64+14 > 69: padded
    np.testing.assert_array_equal(clip_starts(64, geo), [0, 16, 32, 48])  # 48+14 = 62 fits
    np.testing.assert_array_equal(clip_starts(5, geo), [0])  # shorter than one clip
    np.testing.assert_array_equal(clip_starts(15, geo), [0])
    np.testing.assert_allclose(clip_timestamps(np.array([0, 16]), geo, 10.0), [0.75, 2.35])
    # a padded last clip is centred on the frames it covers: 64..69, and a 1-frame video's
    # clip on its one frame, never past the end
    np.testing.assert_allclose(clip_timestamps(np.array([48, 64]), geo, 10.0, 70), [5.55, 6.7])
    np.testing.assert_allclose(clip_timestamps(np.array([0]), geo, 10.0, 1), [0.05])
    np.testing.assert_array_equal(clip_starts(20, ClipGeometry(4, 1, 2)), [0, 2, 4, 6, 8, 10,
                                                                           12, 14, 16])


@pytest.mark.parametrize("suffix,crops,clip", [(".zarr", 1, None), (".h5", 3, (4, 3))])
def test_export_matches_clip_by_clip_forward(tmp_path, good_manifest, suffix, crops, clip):
    store_path = tmp_path / f"f{suffix}"
    # On the CPU, as the definition below: tests/extract/test_cuda.py compares the GPU with it.
    summary = export_features(model_spec=SPEC, manifest=good_manifest, store=store_path,
                              crops=crops, clip=clip, batch_size=3, device="cpu",
                              progress=False)
    assert summary.failures == {} and summary.written == 4
    store = open_store(store_path)
    model, info = cached_model(SPEC)
    frames, stride = clip or (8, 2)
    geometry = ClipGeometry(frames, stride, frames * stride)
    assert store.extractor == {**info, "clip_frames": frames, "frame_stride": stride,
                               "clip_step": frames * stride, "fps": FPS, "crops": crops,
                               "dim": model.feature_dim, "dtype": "float32"}
    manifest = load_manifest(good_manifest)
    for video in manifest.videos:
        got = store.read_features(video.video_id)
        want = direct_features(manifest.video_path(video), geometry, video.num_frames, crops)
        assert got.shape == want.shape == (len(clip_starts(video.num_frames, geometry)), 128)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            store.read_timestamps(video.video_id),
            clip_timestamps(clip_starts(video.num_frames, geometry), geometry, FPS,
                            video.num_frames))
        assert store.read_timestamps(video.video_id).max() <= video.duration
        assert store.video_attrs(video.video_id)["num_frames"] == video.num_frames


def test_decoding_holds_a_bounded_number_of_frames(tmp_path):
    """Streaming: prepared frames alive at once do not grow with the video's length."""
    import weakref

    from extract.store.export import ExportOptions, frame_preparer, iter_clip_batches

    make_video(tmp_path / "long.mp4", 400, seed=0)
    model, _ = cached_model(SPEC)
    spec = model.input_spec
    opts = ExportOptions(geometry=ClipGeometry(8, 2, 4), crop_size=spec.crop_size,
                         short_side=spec.short_side, mean=spec.mean, std=spec.std, batch_size=4)
    prepare, alive, peak = frame_preparer(opts), [], 0

    def counting(frame):
        nonlocal peak
        out = prepare(frame)
        alive.append(weakref.ref(out))
        peak = max(peak, sum(r() is not None for r in alive))
        return out

    batches = list(iter_clip_batches(tmp_path / "long.mp4", opts, counting))
    assert sum(b.shape[0] for b, _ in batches if b is not None) == len(
        clip_starts(400, opts.geometry)) == 98  # 1 + ceil((400 - 15) / 4)
    assert peak <= opts.geometry.span + 1  # one clip's frames, not the video's 400


def test_bad_videos_are_recorded_and_the_command_fails(tmp_path):
    root = make_manifest(tmp_path / "m", {"good": 20, "empty": 0, "corrupt": -1, "gone": -2,
                                          "also_good": 12})
    store = tmp_path / "s.zarr"
    args = ["features", "--backbone", "x3d-tiny", "--manifest", str(root), "--store", str(store)]
    result = CliRunner().invoke(extract_cli, args)
    assert result.exit_code == 1
    assert "2 written" in result.output and "3 failed" in result.output
    failures = open_store(store).failures()
    assert set(failures) == {"empty", "corrupt", "gone"}
    assert "empty" in failures["empty"] and "does not exist" in failures["gone"]
    assert "corrupt.mp4" in failures["corrupt"]
    before = open_store(store).read_features("good")
    # Fix one video and rerun: it is added, its failure is forgotten, nothing else changes.
    make_video(root / "videos" / "gone.mp4", 9, seed=3)
    result = CliRunner().invoke(extract_cli, args)
    assert result.exit_code == 1 and "1 written, 2 already complete, 2 failed" in result.output
    after = open_store(store)
    assert set(after.failures()) == {"empty", "corrupt"}
    assert after.video_ids() == ["also_good", "gone", "good"]
    np.testing.assert_array_equal(after.read_features("good"), before)
    # A different geometry into the same store is refused, showing both fingerprints.
    result = CliRunner().invoke(extract_cli, [*args, "--clip", "4x1"])
    assert result.exit_code != 0 and "'clip_frames': 4" in result.output
    assert "'clip_frames': 8" in result.output


def test_shards_partition_every_id_once(tmp_path, good_manifest):
    ids = [f"video_{i:05d}" for i in range(2000)] + ["a/b", "ü"]
    for n in (1, 3, 8):
        owners = [[i for i in range(n) if in_shard(v, (i, n))] for v in ids]
        assert all(len(o) == 1 for o in owners)
        counts = np.bincount([o[0] for o in owners], minlength=n)
        assert counts.min() > 0.7 * len(ids) / n  # roughly balanced
    # Two shard jobs into one store give the same store as one job.
    whole = export_features(model_spec=SPEC, manifest=good_manifest, store=tmp_path / "a.zarr",
                            progress=False)
    for i in range(2):
        export_features(model_spec=SPEC, manifest=good_manifest, store=tmp_path / "b.h5",
                        shard=(i, 2), progress=False)
    assert whole.written == 4
    assert_same_store(tmp_path / "a.zarr", tmp_path / "b.h5")


def assert_same_store(a: Path, b: Path, exact: bool = True) -> None:
    sa, sb = open_store(a), open_store(b)
    assert sa.video_ids() == sb.video_ids() and sa.extractor == sb.extractor
    for video_id in sa.video_ids():
        fa, fb = sa.read_features(video_id), sb.read_features(video_id)
        if exact:
            np.testing.assert_array_equal(fa, fb)
        else:
            np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(sa.read_timestamps(video_id), sb.read_timestamps(video_id))
    assert sb.staging_entries() == []


def _wait_for(condition, proc, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if not proc.is_alive() or time.time() > deadline:
            return
        time.sleep(0.002)


def _export_in_child(manifest: Path, store: Path) -> None:
    # On the CPU: a forked child cannot use CUDA once the parent has initialized it.
    export_features(model_spec=SPEC, manifest=manifest, store=store, batch_size=2,
                    device="cpu", progress=False)


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_sigkill_at_any_moment_then_resume_equals_uninterrupted(tmp_path, suffix):
    """Kill export processes with SIGKILL at several points; the rerun equals a clean run.

    The processes are forked (torch already imported) to keep the test fast; the CLI path is
    the same function (test_bad_videos... runs the CLI)."""
    import multiprocessing

    root = make_manifest(tmp_path / "m", {f"v{i}": 30 + 9 * i for i in range(8)})
    reference = tmp_path / f"ref{suffix}"
    _export_in_child(root, reference)
    ref = open_store(reference)
    store = tmp_path / f"s{suffix}"
    staging = store / layout.STAGING_DIR
    videos = store / layout.VIDEOS_DIR
    def committed() -> int:  # videos/ of a zarr store also holds the group's zarr.json
        return len([n for n in os.listdir(videos) if n != "zarr.json"]) if videos.is_dir() else 0

    kill_points = [
        lambda: store.exists(),  # right after the store is created
        # a video being written (an HDF5 video is staged only while its bytes are written, so
        # the first commit stands in when the poll misses that moment)
        lambda: (staging.is_dir() and any(staging.iterdir())) or committed() >= 1,
        lambda: committed() >= 5,  # most videos done
    ]
    fork = multiprocessing.get_context("fork")
    visible = []
    for point in kill_points:
        proc = fork.Process(target=_export_in_child, args=(root, store))
        proc.start()
        _wait_for(point, proc)
        if proc.is_alive():  # (a resumed export may finish before a later point is seen)
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        if store.exists():  # whatever is visible is complete and correct
            partial = open_store(store)
            visible.append(len(partial.video_ids()))
            for video_id in partial.video_ids():
                np.testing.assert_array_equal(partial.read_features(video_id),
                                              ref.read_features(video_id))
    assert any(0 < n < 8 for n in visible), visible  # some kill landed mid-run
    summary = export_features(model_spec=SPEC, manifest=root, store=store, batch_size=2,
                              device="cpu", progress=False)
    assert summary.failures == {}
    assert_same_store(reference, store)


def spawned_dask_workers():
    """Workers started by spawn (distributed's default), pinned here because a forked worker
    can hang for good: fork copies a lock that another thread of the pytest process holds (seen
    once in `make test`: a worker stuck in a log handler's stream flush). Spawn costs the
    workers a fresh import of torch.

    distributed is imported first: leaving the context restores the config as it was, which
    must already hold distributed's defaults."""
    import dask
    import distributed  # noqa: F401

    return dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})


def test_dask_local_cluster_two_processes(tmp_path, good_manifest):
    with spawned_dask_workers():
        summary = export_features(model_spec=SPEC, manifest=good_manifest,
                                  store=tmp_path / "d.zarr", workers=2, progress=False)
    assert summary.failures == {} and summary.written == 4
    export_features(model_spec=SPEC, manifest=good_manifest, store=tmp_path / "l.zarr",
                    progress=False)
    assert_same_store(tmp_path / "l.zarr", tmp_path / "d.zarr", exact=False)


@pytest.mark.parametrize("mode,supervision", [("adaptfocus", "weak"), ("full", "full")])
def test_export_from_a_trained_run_records_its_supervision(tmp_path, good_manifest, mode,
                                                           supervision):
    from extract.backbones import build_backbone, weights_sha256

    torch.manual_seed(1)
    model = build_backbone("x3d-tiny", num_classes=3)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": model.state_dict(),
                "config": {"model": {"backbone": "x3d-tiny"}, "train": {"mode": mode}}},
               run / "checkpoints" / "last.pt")
    result = CliRunner().invoke(extract_cli, [
        "features", "--run", str(run), "--manifest", str(good_manifest), "--store",
        str(tmp_path / "r.h5"), "--split", "test", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "r.h5")
    assert store.extractor["supervision"] == supervision
    assert store.extractor["weights_sha256"] == weights_sha256(model)
    test_ids = sorted(v.video_id for v in load_manifest(good_manifest).videos
                      if v.split == "test")
    assert store.video_ids() == test_ids
    spec_store = tmp_path / "k.h5"  # same videos, other weights: different features
    export_features(model_spec=SPEC, manifest=good_manifest, store=spec_store, split="test",
                    progress=False)
    assert not np.allclose(store.read_features(test_ids[0]),
                           open_store(spec_store).read_features(test_ids[0]))


def test_export_from_a_run_uses_the_clips_it_trained_on(tmp_path, good_manifest):
    from extract.backbones import build_backbone

    model = build_backbone("x3d-tiny", num_classes=3)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    trained_on = {"backbone": "x3d-tiny", "num_frames": 2, "frame_stride": 3}
    torch.save({"model": model.state_dict(),
                "config": {"model": trained_on, "train": {"mode": "adaptfocus"}}},
               run / "checkpoints" / "last.pt")
    export_features(model_spec=ModelSpec(run_dir=str(run)), manifest=good_manifest,
                    store=tmp_path / "r.zarr", split="test", device="cpu", progress=False)
    extractor = open_store(tmp_path / "r.zarr").extractor
    # the run's 2 x 3 clips, not x3d-tiny's own (4 x 1); step defaults to F * tau
    assert (extractor["clip_frames"], extractor["frame_stride"], extractor["clip_step"]) == (2, 3,
                                                                                           6)


class FlakySpec(ModelSpec):
    """Fails the first time a worker (not the driver) builds it: a transient task failure."""

    def __init__(self, marker: str, driver_pid: int):
        super().__init__(backbone="x3d-tiny")
        object.__setattr__(self, "marker", marker)
        object.__setattr__(self, "driver_pid", driver_pid)

    # Identity, so workers never find the driver's cached model and build their own.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def build(self):
        if os.getpid() != self.driver_pid and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise RuntimeError("transient failure (first build in a worker)")
        return super().build()


def test_dask_retries_transient_task_failures(tmp_path, good_manifest):
    spec = FlakySpec(str(tmp_path / "failed_once"), os.getpid())
    with spawned_dask_workers():
        summary = export_features(model_spec=spec, manifest=good_manifest,
                                  store=tmp_path / "d.h5", workers=2, progress=False)
    assert (tmp_path / "failed_once").exists()  # a task did fail once...
    assert summary.failures == {} and summary.written == 4  # ...and was retried


def test_cli_on_the_tiny_synthetic_benchmark(tmp_path):
    """The command end to end on the embedded synthetic data (paths relative to the manifest)."""
    from data_manifests.synthetic import generate_benchmark

    root = generate_benchmark("tiny", tmp_path / "tiny", num_videos=3, progress=False)
    store = tmp_path / "tiny.zarr"
    result = CliRunner().invoke(extract_cli, [
        "features", "--backbone", "x3d-tiny", "--manifest", str(root), "--store", str(store),
        "--clip", "8x1", "--step", "4", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(root)
    opened = open_store(store)
    assert opened.video_ids() == sorted(v.video_id for v in manifest.videos)
    for video in manifest.videos:
        ts = opened.read_timestamps(video.video_id)
        assert len(ts) == len(clip_starts(video.num_frames, ClipGeometry(8, 1, 4)))
        assert ts[-1] <= video.duration + 8 / video.fps
    result = CliRunner().invoke(extract_cli, ["inspect", str(store), "--verify", "--manifest",
                                              str(root)])
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_cpu_threads_leave_the_decoders_their_cores(monkeypatch):
    """An export on the CPU gives torch the cores the decoders leave (at least 1, at most
    torch's default); an explicit number wins; on a GPU nothing changes unless asked."""
    from extract.store.export import set_cpu_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
        assert set_cpu_threads(None, 2, "cpu") == 4 and torch.get_num_threads() == 4
        torch.set_num_threads(8)
        assert set_cpu_threads(None, 8, "cpu") == 1  # more decoders than cores
        torch.set_num_threads(2)
        assert set_cpu_threads(None, 1, "cpu") == 2  # never above torch's default
        assert set_cpu_threads(3, 2, "cpu") == 3 and torch.get_num_threads() == 3
        torch.set_num_threads(8)
        assert set_cpu_threads(None, 2, "cuda") == 8  # a GPU export keeps its threads
    finally:
        torch.set_num_threads(before)
