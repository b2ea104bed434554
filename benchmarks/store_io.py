"""Feature store I/O: write / read MB/s, per-video random read latency and size on disk.

Compares the zarr v3 backend (codecs zstd, blosc-lz4, none), the HDF5 backend (lzf, gzip,
none) and a plain folder of one .npy per video, on feature-like data: ReLU'd, temporally
smooth (a random walk along T), float32.

    .venv/bin/python benchmarks/store_io.py --videos 100 --dim 512 --min-t 50 --max-t 500

With ``--s3`` the default codec of each backend is also written to and read from a local
S3-compatible server (moto, started on 127.0.0.1 for the run), beside the same store on the
local disk:

    .venv/bin/python benchmarks/store_io.py --s3 --videos 100 --dim 512

MB/s are over the uncompressed bytes (T * D * 4 per video).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from extract.store import create_store, open_store


def feature_like(t: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """(T, D) float32: a smoothed random walk, ReLU'd (about half the values are 0)."""
    steps = rng.normal(scale=0.3, size=(t, d)).astype(np.float32)
    walk = np.cumsum(steps, axis=0) / np.sqrt(np.arange(1, t + 1, dtype=np.float32))[:, None]
    return np.maximum(walk + rng.normal(size=(1, d)).astype(np.float32), 0)


def du(path: Path | str) -> int:
    if "://" in str(path):
        import fsspec

        return int(fsspec.filesystem("s3", use_listings_cache=False).du(str(path)))
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bench_store(path: Path | str, data: dict[str, np.ndarray], codec: str, reads: list[str]) -> dict:
    extractor = {"backbone": "bench", "weights_sha256": "0" * 64, "supervision": "kinc",
                 "clip_frames": 16, "frame_stride": 1, "clip_step": 16, "fps": 30.0, "crops": 1,
                 "dim": next(iter(data.values())).shape[1], "dtype": "float32"}
    t0 = time.perf_counter()
    writer = create_store(path, extractor=extractor, manifest_sha256=None, codec=codec)
    for video_id, feats in data.items():
        writer.write_video(video_id, feats, np.arange(len(feats)) * 16 / 30 + 8 / 30,
                           num_frames=16 * len(feats), fps=30.0, duration=len(feats) * 16 / 30)
    write_s = time.perf_counter() - t0
    store = open_store(path)
    t0 = time.perf_counter()
    for video_id in store.video_ids():
        store.read_features(video_id)
    read_s = time.perf_counter() - t0
    latencies = []
    for video_id in reads:
        t0 = time.perf_counter()
        store.read_features(video_id)
        latencies.append(time.perf_counter() - t0)
    return {"write_s": write_s, "read_s": read_s, "latencies": latencies, "bytes": du(path)}


def bench_npy(path: Path, data: dict[str, np.ndarray], reads: list[str]) -> dict:
    path.mkdir()
    t0 = time.perf_counter()
    for video_id, feats in data.items():
        np.save(path / f"{video_id}.npy", feats)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for video_id in sorted(data):
        np.load(path / f"{video_id}.npy")
    read_s = time.perf_counter() - t0
    latencies = []
    for video_id in reads:
        t0 = time.perf_counter()
        np.load(path / f"{video_id}.npy")
        latencies.append(time.perf_counter() - t0)
    return {"write_s": write_s, "read_s": read_s, "latencies": latencies, "bytes": du(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--min-t", type=int, default=50)
    parser.add_argument("--max-t", type=int, default=500)
    parser.add_argument("--random-reads", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--s3", action="store_true",
                        help="only each backend's default codec, on the local disk and on a "
                             "local S3 server")
    args = parser.parse_args()
    if args.s3:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.s3_server import running_s3_server

        with running_s3_server():
            import fsspec

            fsspec.filesystem("s3").mkdir("bench-store-io")
            run(args, [("zarr", "zstd", "local"), ("zarr", "zstd", "s3"),
                       ("hdf5", "none", "local"), ("hdf5", "none", "s3")])
        return
    run(args, [(backend, codec, "local") for backend, codec in (
        ("zarr", "zstd"), ("zarr", "blosc-lz4"), ("zarr", "none"), ("hdf5", "lzf"),
        ("hdf5", "gzip"), ("hdf5", "none"), ("npy", "-"))])


def run(args: argparse.Namespace, cases: list[tuple[str, str, str]]) -> None:
    """Each case (backend, codec, where) on the same generated videos; prints a table."""
    rng = np.random.default_rng(args.seed)
    data = {f"video_{i:05d}": feature_like(int(rng.integers(args.min_t, args.max_t + 1)),
                                           args.dim, rng) for i in range(args.videos)}
    total_mb = sum(f.nbytes for f in data.values()) / 1e6
    reads = [str(v) for v in rng.choice(sorted(data), size=args.random_reads)]
    work = Path(tempfile.mkdtemp(prefix="store_io_"))
    rows = []
    try:
        for backend, codec, where in cases:
            name = f"{backend}-{codec}{'.zarr' if backend == 'zarr' else '.h5'}"
            target = work / name if where == "local" else f"s3://bench-store-io/{name}"
            if backend == "npy":
                result = bench_npy(work / "npy", data, reads)
            else:
                result = bench_store(target, data, codec, reads)
            lat = np.array(result["latencies"]) * 1e3
            rows.append({"backend": backend, "codec": codec, "where": where,
                         "write_MBps": total_mb / result["write_s"],
                         "read_MBps": total_mb / result["read_s"],
                         "read_ms_median": float(np.median(lat)),
                         "read_ms_p95": float(np.percentile(lat, 95)),
                         "size_ratio": result["bytes"] / (total_mb * 1e6)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{args.videos} videos, D={args.dim}, T in [{args.min_t}, {args.max_t}], "
          f"{total_mb:.1f} MB float32; {args.random_reads} random whole-video reads")
    print(f"{'backend':8s} {'codec':10s} {'where':6s} {'write MB/s':>10s} {'read MB/s':>10s} "
          f"{'read ms p50':>11s} {'p95':>7s} {'size':>6s}")
    for r in rows:
        print(f"{r['backend']:8s} {r['codec']:10s} {r['where']:6s} {r['write_MBps']:10.1f} {r['read_MBps']:10.1f} "
              f"{r['read_ms_median']:11.2f} {r['read_ms_p95']:7.2f} {r['size_ratio']:6.2f}")


if __name__ == "__main__":
    main()
