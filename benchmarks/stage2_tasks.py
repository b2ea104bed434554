"""Benchmark of a stage-2 task's methods on Kinc / Weak / Full feature stores, over seeds.

    python benchmarks/stage2_tasks.py --task seg --manifest M \
        --store kinc=K/features.zarr --store weak=W/features.zarr --store full=F/features.zarr \
        --methods linear mstcn --seeds 0 1 2 --out bench_out/seg

The stores come from ``benchmarks/recipes/stage1-stores.yaml`` (the command is at its top).
Every (method, store, seed) trains with ``weakfeat downstream train`` semantics in its own
process (so its peak RSS is its own): the method's official defaults, ``--set`` overrides for
every run and ``--method-set METHOD:key=value`` for one method; the checkpoint is selected on
the "val" split and scored on "test". Nothing is tuned on the seeds that are reported: the
settings are the methods' defaults (plus the overrides, which docs/stage2.md states).

Prints and writes (``OUT/table.md``, ``OUT/results.json``): per method and store the task's
headline metrics as mean ± std over seeds (percent), Weak − Kinc as the mean of the per-seed
differences with its 95% t-interval, seconds per training epoch and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import multiprocessing.connection
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# two-sided 95% Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def run_one(task: str, method: str, store: str, manifest: str, out: str,
            overrides: list[str], queue: mp.Queue) -> None:
    """Train, then score the test split, in this (child) process; report via ``queue``."""
    import torch

    torch.set_num_threads(1)
    from downstream.training import evaluate_run, train_run

    tick = time.perf_counter()
    try:
        results = train_run(task=task, method=method, features=store, manifest=manifest,
                            out=out, overrides=overrides, progress=False)
        epochs = [json.loads(line)
                  for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
        metrics = evaluate_run(out, features=store, manifest=manifest, split="test")
    except Exception as exc:  # a failed run is reported in the table, the others go on
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise
    queue.put({"metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
               "best_epoch": results["best_epoch"],
               "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])),
               "train_seconds": time.perf_counter() - tick,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width NaN for one value."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan
    t = T95.get(n - 1) or T95[max(k for k in T95 if k <= n - 1)]
    return mean, t * float(np.std(values, ddof=1)) / math.sqrt(n)


def table(rows: list[dict], methods: list[str], stores: list[str], headline: tuple[str, ...],
          with_max: bool = False) -> str:
    lines = []
    for metric in headline:
        head = f"| {metric} (%) | " + " | ".join(stores)
        delta = "weak" in stores and "kinc" in stores
        head += " | Weak − Kinc (95% CI) |" if delta else " |"
        lines += [head, "|---" * (len(stores) + 1 + delta) + "|"]
        for method in methods:
            cells = []
            for store in stores:
                values = [100 * r["metrics"][metric] for r in rows
                          if r["method"] == method and r["store"] == store
                          and metric in r.get("metrics", {})]
                cell = f"{np.mean(values):.1f} ± {np.std(values):.1f}" if values else "–"
                if values and with_max:  # set-supervised segmentation papers report the max too
                    cell += f" (max {np.max(values):.1f})"
                cells.append(cell)
            if delta:
                by_seed = {(r["store"], r["seed"]): 100 * r["metrics"][metric] for r in rows
                           if r["method"] == method and metric in r.get("metrics", {})}
                diffs = [by_seed[("weak", s)] - by_seed[("kinc", s)]
                         for s in sorted({s for _, s in by_seed})
                         if ("weak", s) in by_seed and ("kinc", s) in by_seed]
                mean, half = interval(diffs) if diffs else (math.nan, math.nan)
                cells.append(f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["| method | store | s/epoch | peak RSS MiB | best epochs |", "|---|---|---|---|---|"]
    for method in methods:
        for store in stores:
            mine = [r for r in rows if r["method"] == method and r["store"] == store
                    and "metrics" in r]
            if mine:
                lines.append(f"| {method} | {store} | "
                             f"{np.mean([r['seconds_per_epoch'] for r in mine]):.2f} | "
                             f"{max(r['peak_rss_mib'] for r in mine):.0f} | "
                             f"{', '.join(str(r['best_epoch']) for r in mine)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, help="tal | seg | car | tsg")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--store", action="append", required=True, metavar="NAME=PATH",
                        help="a feature store by name (kinc, weak, full); repeatable")
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True,
                        help="work folder (recreated, unless --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs OUT/rows.jsonl holds and run only the others")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for every run (key=value)")
    parser.add_argument("--method-set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                        help="config override for one method")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="metrics to tabulate (default: the task's headline metrics)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, one thread each (seconds per epoch then share cores)")
    parser.add_argument("--with-max", action="store_true",
                        help="add the max over seeds to each cell (POC's Table 5 reports it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from downstream.tasks import get_task

    headline = tuple(args.metrics or get_task(args.task).headline)
    stores = dict(item.split("=", 1) for item in args.store)
    per_method: dict[str, list[str]] = {}
    for item in args.method_set:
        method, _, setting = item.partition(":")
        per_method.setdefault(method, []).append(setting)
    work = Path(args.out)
    done = read_rows(work) if args.resume else []
    if not args.resume:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    finished = {(r["method"], r["store"], r["seed"]) for r in done if "error" not in r}
    rows = [r for r in done if "error" not in r]
    jobs = [(method, store, path, seed) for method in args.methods
            for store, path in stores.items() for seed in args.seeds
            if (method, store, seed) not in finished]
    print(f"{len(jobs)} runs to go ({len(rows)} done before)", flush=True)
    meta = {"task": args.task, "overrides": args.overrides, "method_overrides": per_method,
            "stores": stores, "manifest": args.manifest}
    for row in run_all(args, jobs, per_method):
        rows.append(row)
        with (work / "rows.jsonl").open("a") as f:  # kept as it comes: a cut run resumes
            f.write(json.dumps(row) + "\n")
        if "error" in row:
            print(f"{row['method']} {row['store']} seed {row['seed']}: FAILED {row['error']}",
                  flush=True)
            continue
        shown = ", ".join(f"{k} {100 * row['metrics'][k]:.1f}" for k in headline
                          if k in row["metrics"])
        print(f"{row['method']} {row['store']} seed {row['seed']}: {shown} (best epoch "
              f"{row['best_epoch']}, {row['seconds_per_epoch']:.2f} s/epoch, "
              f"{row['peak_rss_mib']:.0f} MiB)", flush=True)
    text = table(rows, args.methods, list(stores), headline, args.with_max)
    (work / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    (work / "table.md").write_text(text + "\n")
    print()
    print(text)
    failed = [r for r in rows if "error" in r]
    if failed:
        sys.exit(f"{len(failed)} run(s) failed (see above); rerun with --resume to retry them")


def read_rows(work: Path) -> list[dict]:
    """The rows a previous (possibly cut) benchmark in ``work`` finished."""
    path = work / "rows.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_all(args: argparse.Namespace, jobs: list[tuple], per_method: dict[str, list[str]]):
    """Run ``jobs`` with ``args.jobs`` children at once; yield each row as its run ends (a slot
    is refilled as soon as any run ends, so short runs never wait behind long ones)."""
    ctx = mp.get_context("spawn")
    jobs = list(jobs)
    running: list[tuple[mp.Process, mp.Queue, dict]] = []
    # a stopped benchmark stops its runs too (rows.jsonl keeps the finished ones: --resume)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))
    try:
        yield from _schedule(args, jobs, per_method, ctx, running)
    finally:
        for proc, _, _ in running:
            proc.terminate()


def _schedule(args: argparse.Namespace, jobs: list[tuple], per_method: dict[str, list[str]],
              ctx: Any, running: list) -> Any:
    while jobs or running:
        while jobs and len(running) < args.jobs:  # each child uses one thread
            method, store, path, seed = jobs.pop(0)
            queue = ctx.Queue()
            overrides = [*args.overrides, *per_method.get(method, []), f"train.seed={seed}"]
            proc = ctx.Process(target=run_one, args=(
                args.task, method, str(Path(path).resolve()), str(Path(args.manifest).resolve()),
                str(Path(args.out) / f"{method}-{store}-s{seed}"), overrides, queue))
            proc.start()
            running.append((proc, queue, {"method": method, "store": store, "seed": seed}))
        mp.connection.wait([proc.sentinel for proc, _, _ in running])
        for entry in [e for e in running if not e[0].is_alive()]:
            proc, queue, row = entry
            running.remove(entry)
            try:
                row.update(queue.get(timeout=10))
            except Empty:  # the child died before reporting (killed, out of memory)
                row["error"] = f"the run's process ended with exit code {proc.exitcode}"
            proc.join()
            yield row


if __name__ == "__main__":
    main()
