"""Feature export wall time on 1, 2 and 4 dask LocalCluster workers, and in one process.

    .venv/bin/python benchmarks/export_scaling.py --out export_scaling.json

The same synthetic videos (the ``demo`` preset: 260 videos of 24-60 s, 32x32 pixels, 8 fps,
rendered once into ``--data``, reused by later runs) are exported into a fresh zarr store per
run, with the demo recipe's extraction settings (c3d-tiny, clips 8x2, step 8; random weights,
the same cost as trained ones). Each run is ``export_features`` as the command calls it:

* ``single/Tt``: the plain path, one process with T torch intra-op threads (``--threads``:
  torch's default, which the command keeps, and 1, as each worker has);
* ``workers=N``: ``--workers N``, a LocalCluster of N single-threaded worker processes. Its
  time includes starting the cluster (each worker spawns and imports torch), as a user sees it.

Each process also runs ``--decode-threads`` decoding threads. Speedup is the 1-worker time over
a run's time. Past the number of cores, workers only share them (and the store's disk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

from data_manifests.schema import load_manifest
from data_manifests.synthetic import generate_benchmark
from extract.clip_grid import parse_clip
from extract.store.export import ModelSpec, cached_model, export_features


def run_once(manifest: Path, store: Path, spec: ModelSpec, args: argparse.Namespace,
             workers: int) -> dict:
    """One export into a fresh ``store``: wall and CPU seconds (this process and its ended
    children: the LocalCluster's workers), and a check that every video was written."""
    shutil.rmtree(store, ignore_errors=True)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    summary = export_features(model_spec=spec, manifest=manifest, store=store,
                              clip=parse_clip(args.clip), step=args.step,
                              batch_size=args.batch_size, workers=workers, device="cpu",
                              decode_threads=args.decode_threads, progress=False)
    seconds = time.perf_counter() - started
    if summary.failures or summary.written != summary.selected:
        raise SystemExit(f"export incomplete: {summary.text()}")
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu_before,
            "videos": summary.written}


def cpu_seconds() -> float:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo", help="synthetic preset (weakfeat data synth)")
    parser.add_argument("--videos", type=int, default=None, help="default: the preset's count")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "weakfeat-"
                        "export-scaling", help="where the videos are rendered (reused)")
    parser.add_argument("--backbone", default="c3d-tiny")
    parser.add_argument("--clip", default="8x2", help="FxTAU")
    parser.add_argument("--step", type=int, default=8, help="frames between clips")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--decode-threads", type=int, default=2, help="per process")
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({torch.get_num_threads(), 1}, reverse=True),
                        help="torch intra-op threads of the single-process runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (the fastest "
                        "counts)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    load_at_start = os.getloadavg()  # others' work on a shared machine skews the timings

    data = args.data / f"{args.preset}-{args.videos or 'all'}"
    started = time.perf_counter()
    manifest = generate_benchmark(args.preset, data, num_videos=args.videos, progress=False)
    print(f"videos in {data} (rendered or reused in {time.perf_counter() - started:.1f} s)")
    frames = sum(v.num_frames for v in load_manifest(manifest).videos)

    spec = ModelSpec(backbone=args.backbone)
    cached_model(spec, "cpu")  # the driver's model is built once, outside the timings
    # (a LocalCluster's workers get one thread each from their nanny, OMP_NUM_THREADS=1)
    settings = ([(f"single/{t}t", 0, t) for t in args.threads]
                + [(f"workers={n}", n, 1) for n in args.workers])
    rows = []
    with tempfile.TemporaryDirectory(prefix="export-scaling-") as tmp:
        for name, workers, threads in settings:
            torch.set_num_threads(threads)
            runs = [run_once(manifest, Path(tmp) / "features.zarr", spec, args, workers)
                    for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            rows.append({"setting": name, "workers": workers, "torch_threads": threads,
                         "seconds": best["seconds"],
                         "all_seconds": [r["seconds"] for r in runs],
                         "videos_per_s": best["videos"] / best["seconds"],
                         "cpu_seconds": best["cpu_seconds"], "videos": best["videos"]})
            print(f"  {name}: {best['seconds']:.1f} s", flush=True)
    one = next((r["seconds"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["speedup_vs_1_worker"] = one / row["seconds"] if one else None

    print(f"\n{len(load_manifest(manifest).videos)} videos, {frames} frames; {args.backbone} "
          f"clips {args.clip} step {args.step}; {os.cpu_count()} CPUs, load average "
          f"{load_at_start[0]:.1f} before the runs")
    print(f"{'setting':<12}{'seconds':>9}{'videos/s':>10}{'vs 1 worker':>13}{'CPU s':>8}")
    for row in rows:
        ratio = row["speedup_vs_1_worker"]
        print(f"{row['setting']:<12}{row['seconds']:>9.1f}{row['videos_per_s']:>10.2f}"
              f"{(f'{ratio:.2f}x' if ratio else '-'):>13}{row['cpu_seconds']:>8.1f}")
    if args.out:
        result = {"preset": args.preset, "videos": rows[0]["videos"], "frames": frames,
                  "backbone": args.backbone, "clip": args.clip, "step": args.step,
                  "batch_size": args.batch_size, "decode_threads": args.decode_threads,
                  "cpus": os.cpu_count(),
                  "machine": platform.platform(), "torch": torch.__version__,
                  "load_avg_at_start": load_at_start, "rows": rows}
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":  # dask's workers are spawned: they import this file
    main()
