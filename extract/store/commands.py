"""`weakfeat extract features|inspect|import-npy|export-npy|convert|combine`: the feature store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from extract.clip_grid import parse_clip, parse_shard, shard_from_environment
from extract.store.submit import CLUSTERS, DEFAULT_TIME_MIN

# Commands import their implementation when they run: `weakfeat --help` should not pay for
# torch, zarr and h5py.


@click.command(name="features")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False),
              help="stage-1 run folder (weak / full supervision)")
@click.option("--backbone", help="backbone name (Kinetics features with --pretrained)")
@click.option("--pretrained", help="kinetics400 or a checkpoint path (with --backbone)")
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--store", required=True, help="OUT.zarr (zarr v3) or OUT.h5 (HDF5)")
@click.option("--split", default=None, help="only this split (default: all videos)")
@click.option("--clip", default=None, help="FxTAU, e.g. 16x1 (default: the backbone's)")
@click.option("--step", type=click.IntRange(min=1), default=None, help="frames between clips (default F*TAU)")
@click.option("--crops", type=click.Choice(["1", "3"]), default="1")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--shard", default=None,
              help="i/N: this job's part (default: from SLURM_ARRAY_TASK_ID/_MIN/_COUNT inside "
                   "a SLURM job array, else 0/1; give 0/1 to export everything from an array "
                   "task)")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="dask LocalCluster processes")
@click.option("--scheduler", default=None, help="address of an existing dask scheduler")
@click.option("--wait-for-workers", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="with --scheduler: seconds to wait for a dask worker before failing")
@click.option("--device", default="auto", show_default=True)
@click.option("--decode-threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="videos decoded concurrently (per process)")
@click.option("--torch-threads", type=click.IntRange(min=1), default=None,
              help="torch threads of an export in this process (default on the CPU: the cores "
                   "the decoders leave, at least 1)")
@click.option("--videos-root", default=None, type=click.Path(file_okay=False))
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32")
@click.option("--codec", default=None, help="zarr: zstd (default), blosc-lz4, none; HDF5: none (default), lzf, gzip")
@click.option("--submit", type=click.Choice(CLUSTERS), default=None,
              help="submit a job array of --shards tasks (slurm; local: subprocesses here) "
                   "instead of exporting in this process")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="with --submit: tasks in the array, one shard each")
@click.option("--slurm-partition", default=None, help="with --submit slurm: the partition")
@click.option("--slurm-time", type=click.IntRange(min=1), default=None,
              help=f"with --submit: minutes per task (default {DEFAULT_TIME_MIN}); a task "
                   "still running then is requeued (3 times at most) and resumes")
@click.option("--slurm-gpus", type=click.IntRange(min=0), default=None,
              help="with --submit: GPUs per task (local: GPUs made visible, default none)")
@click.option("--slurm-cpus", type=click.IntRange(min=1), default=None,
              help="with --submit: CPUs per task")
@click.option("--slurm-mem", type=click.FloatRange(min=0, min_open=True), default=None,
              help="with --submit: memory per task, GB")
@click.option("--logs", default=None,
              help="with --submit: folder of the job logs (default STORE.logs; needed with a "
                   "store URL)")
@click.option("--wait", is_flag=True,
              help="with --submit: wait for the jobs, print the summary, exit 1 if any failed")
def features(run_dir, backbone, pretrained, manifest, store, split, clip, step, crops,
             batch_size, shard, workers, scheduler, wait_for_workers, device, decode_threads,
             torch_threads, videos_root, dtype, codec, submit, shards, slurm_partition,
             slurm_time, slurm_gpus, slurm_cpus, slurm_mem, logs, wait) -> None:
    """Export per-clip features of a manifest's videos into a store (resumable).

    Inside a SLURM job array (#SBATCH --array=0-7) the shard comes from the array task's
    variables (docs/slurm_export.sbatch); --submit slurm --shards 8 submits such an array
    itself, and `weakfeat extract status` follows its progress."""
    if (run_dir is None) == (backbone is None):
        raise click.UsageError("give exactly one of --run RUN_DIR and --backbone NAME")
    if workers and scheduler:
        raise click.UsageError("give at most one of --workers and --scheduler")
    if torch_threads and (workers or scheduler or submit):
        raise click.UsageError("--torch-threads is for an export in this process; dask workers "
                               "run one thread each, and --submit tasks get --slurm-cpus")
    submission = {"shards": shards, "slurm_partition": slurm_partition, "slurm_time": slurm_time,
                  "slurm_gpus": slurm_gpus, "slurm_cpus": slurm_cpus, "slurm_mem": slurm_mem,
                  "logs": logs, "wait": wait or None}
    check_submit_options(submit, submission, shard=shard, workers=workers, scheduler=scheduler)
    if submit:
        try:
            clip_frames = parse_clip(clip) if clip else None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        task = {"model": {"backbone": backbone, "pretrained": pretrained, "run_dir": run_dir},
                "manifest": manifest, "store": store, "split": split, "clip": clip_frames,
                "step": step, "crops": int(crops), "batch_size": batch_size, "device": device,
                "videos_root": videos_root, "dtype": dtype, "codec": codec,
                "decode_threads": decode_threads}
        sys.exit(submit_features(task, submit, submission))
    from extract.store import export
    if not (workers or scheduler):  # dask workers run one thread each
        export.set_cpu_threads(torch_threads, decode_threads, device)
    try:
        summary = export.export_features(
            model_spec=export.ModelSpec(backbone=backbone, pretrained=pretrained, run_dir=run_dir),
            manifest=manifest, store=store, split=split,
            clip=parse_clip(clip) if clip else None, step=step, crops=int(crops),
            batch_size=batch_size, shard=this_shard(shard), workers=workers,
            scheduler=scheduler, wait_for_workers=wait_for_workers, device=device,
            videos_root=videos_root, dtype=dtype, codec=codec, decode_threads=decode_threads)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.text())
    if summary.failures:
        sys.exit(1)


def this_shard(option: str | None) -> tuple[int, int]:
    """``--shard`` when given, else the SLURM array task's, else the whole manifest."""
    if option is not None:
        return parse_shard(option)
    shard = shard_from_environment(os.environ)
    if shard is None:
        return 0, 1
    # (in the job's log: which part this task took, and from where)
    click.echo(f"shard {shard[0]}/{shard[1]} from SLURM_ARRAY_TASK_ID="
               f"{os.environ['SLURM_ARRAY_TASK_ID']}", err=True)
    return shard


def check_submit_options(submit: str | None, submission: dict, *, shard: str | None,
                         workers: int, scheduler: str | None) -> None:
    """Refuse option combinations that cannot mean anything, before any work starts."""
    given = [f"--{name.replace('_', '-')}" for name, value in submission.items()
             if value is not None]
    if not submit:
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --submit slurm|local")
        return
    if shard is not None:
        raise click.UsageError("--submit runs every shard (--shards N); drop --shard")
    if workers or scheduler:
        raise click.UsageError("--submit runs one process per shard; drop --workers / "
                               "--scheduler")
    if submission["shards"] is None:
        raise click.UsageError("--submit needs --shards N (the number of tasks in the array)")
    if submit == "local" and submission["slurm_partition"] is not None:
        raise click.UsageError("--slurm-partition only applies with --submit slurm")


def submit_features(task: dict, cluster: str, submission: dict) -> int:
    """Submit the array; with ``--wait`` follow it. Returns the exit code."""
    from data_manifests.schema import load_manifest
    from extract.clip_grid import shard_index
    from extract.store import StoreError, status, submit

    store, shards = task["store"], submission["shards"]
    submit.check_cluster(cluster)
    if submission["logs"] is not None:
        logs = os.path.abspath(submission["logs"])
    elif submit.is_url(store):
        raise click.UsageError(f"--store {store} is a URL: give --logs DIR, a folder the jobs "
                               "can write (on a shared filesystem for slurm)")
    else:
        logs = submit.default_logs(store)
    manifest = load_manifest(task["manifest"])
    selected = manifest.split(task["split"]).videos  # (an unknown split fails here, not in jobs)
    counts = [0] * shards
    for video in selected:
        counts[shard_index(video.video_id, shards)] += 1
    shown = ", ".join(map(str, counts[:16])) + (", ..." if shards > 16 else "")
    click.echo(f"{store}: {len(selected)} videos in {shards} shard{'s' * (shards > 1)} "
               f"({shown} per shard)")
    resources = submit.Resources(
        time_min=submission["slurm_time"] or DEFAULT_TIME_MIN,
        partition=submission["slurm_partition"], gpus=submission["slurm_gpus"],
        cpus=submission["slurm_cpus"], mem_gb=submission["slurm_mem"])
    jobs = submit.submit_export(task, cluster=cluster, shards=shards, logs=logs,
                                resources=resources)
    watch = submit.status_command(store if submit.is_url(store) else os.path.abspath(store),
                                  os.path.abspath(task["manifest"]), task["split"], shards)
    click.echo(submit.submitted_text(jobs, cluster=cluster, logs=logs, watch=watch))
    if not submission["wait"]:
        return 0

    def progress() -> str:
        try:
            report = status.export_status(store, manifest=manifest, split=task["split"],
                                          shards=shards)
        except StoreError:
            return "the store is not created yet"
        t = report["totals"]
        return (f"videos: {t['complete']}/{t['selected']} complete, {t['failed']} failed, "
                f"{len(report['writing'])} being written")

    try:
        outcomes = submit.wait_for_jobs(jobs, progress=progress, echo=click.echo,
                                        poll_s=1.0 if cluster == "local" else 10.0)
    except KeyboardInterrupt:
        click.echo(submit.interrupted_text(jobs, cluster, watch), err=True)
        return 130
    click.echo(submit.summary_text(store, outcomes))
    return 0 if submit.succeeded(outcomes) else 1


@click.command(name="inspect")
@click.argument("store")
@click.option("--verify", is_flag=True,
              help="read every video: digests, shapes, NaN/Inf, timestamps")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--manifest", default=None, type=click.Path(exists=True),
              help="compare the store's ids with this manifest")
@click.option("--split", default=None, help="with --manifest: only this split")
def inspect(store, verify, as_json, manifest, split) -> None:
    """Counts, dims, provenance, incomplete / failed videos; exit 1 on any problem."""
    from extract.store import tools
    try:
        report = tools.inspect_store(store, verify=verify, manifest=manifest, split=split)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(report, indent=1, sort_keys=True) if as_json
               else tools.format_report(report))
    damaged = report["damaged"]
    if damaged:
        raise click.ClickException(f"{store}: {len(damaged)} damaged videos "
                                   f"({tools.name_ids(list(damaged))}); delete them from the "
                                   "store and export them again")
    if report["problems"]:
        sys.exit(1)


@click.command(name="import-npy")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--store", required=True)
@click.option("--fps", required=True,
              help="frame rate the features were taken at: a number, a JSON file mapping each "
                   "video id to its rate, or 'manifest' (each video's fps in --manifest)")
@click.option("--clip", required=True, help="FxTAU of the source features, e.g. 16x1")
@click.option("--step", type=click.IntRange(min=1), required=True, help="frames between consecutive rows")
@click.option("--backbone", default="external", show_default=True)
@click.option("--supervision", default="kinc", show_default=True)
@click.option("--weights-sha256", default="unknown", show_default=True)
@click.option("--manifest", default=None, type=click.Path(exists=True),
              help="num_frames / duration per video (default: T * step frames)")
def import_npy(folder, store, fps, clip, step, backbone, supervision, weights_sha256,
               manifest) -> None:
    """Import one (T, D) .npy per video (ActionFormer / ASL / LACP / MS-TCN format)."""
    from extract.store import tools
    try:
        count = tools.import_npy(folder, store, fps=parse_fps(fps, manifest), clip=parse_clip(clip),
                                 step=step, backbone=backbone, supervision=supervision,
                                 weights_sha256=weights_sha256, manifest=manifest)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{store}: imported {count} videos from {folder}")


def parse_fps(value: str, manifest: str | None) -> float | dict[str, float]:
    """``--fps``: a number, ``manifest`` (the manifest's per-video fps) or a JSON map file."""
    if value == "manifest":
        if manifest is None:
            raise click.BadParameter("'manifest' needs --manifest", param_hint="--fps")
        from data_manifests.schema import load_manifest

        return {v.video_id: v.fps for v in load_manifest(manifest).videos}
    try:
        rate = float(value)
    except ValueError:
        path = Path(value)
        if not path.is_file():
            raise click.BadParameter(f"{value!r} is neither a number, 'manifest' nor a JSON "
                                     "file", param_hint="--fps") from None
        try:
            rates = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path}: not JSON ({exc})", param_hint="--fps") from None
        if not isinstance(rates, dict):
            raise click.BadParameter(f"{path}: expected an object {{video id: fps}}",
                                     param_hint="--fps")
        return rates
    if not rate > 0:
        raise click.BadParameter(f"{value} must be > 0", param_hint="--fps")
    return rate


@click.command(name="export-npy")
@click.argument("store")
@click.argument("folder")
def export_npy(store, folder) -> None:
    """Write one (T, D) float32 .npy per video, plus store_meta.json."""
    from extract.store import tools
    try:
        count = tools.export_npy(store, folder)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{folder}: wrote {count} videos")


@click.command(name="convert")
@click.argument("src")
@click.argument("dst")
@click.option("--codec", default=None)
def convert(src, dst, codec) -> None:
    """Copy a store to another backend (zarr <-> HDF5) or codec; resumable."""
    from extract.store import tools
    try:
        count = tools.convert_store(src, dst, codec=codec)
        held = len(tools.open_store(dst).video_ids())
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    earlier = f" ({held - count} already there from an earlier run)" if held > count else ""
    click.echo(f"{dst}: copied {count} videos from {src}{earlier}")


@click.command(name="combine")
@click.argument("a")
@click.argument("b")
@click.option("--out", required=True)
@click.option("--align", type=click.Choice(("linear", "nearest")), default="linear",  # = tools.ALIGNMENTS
              show_default=True, help="how B is resampled to A's clip centres")
def combine(a, b, out, align) -> None:
    """Concatenate stores A and B along D on A's timestamps (e.g. RGB + optical flow)."""
    from extract.store import tools
    try:
        result = tools.combine_stores(a, b, out, align=align)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out}: {result['written']} videos; only in A: {len(result['only_in_a'])}, "
               f"only in B: {len(result['only_in_b'])}")


@click.command(name="status")
@click.argument("store")
@click.option("--manifest", default=None, type=click.Path(exists=True),
              help="per-shard progress of this manifest's videos")
@click.option("--split", default=None, help="with --manifest: only this split")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="with --manifest: N of the export's --shards or --shard i/N (default 1)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def status(store, manifest, split, shards, as_json) -> None:
    """Progress of an export, per shard, also while its jobs run.

    Exit code: 0 when every selected video is complete (without --manifest: none failed and
    none being written), 1 when a video failed, 3 when work remains and none failed."""
    from extract.store.status import exit_code, export_status, format_status
    if manifest is None and (split is not None or shards is not None):
        raise click.UsageError("--split and --shards need --manifest")
    report = export_status(store, manifest=manifest, split=split, shards=shards or 1)
    click.echo(json.dumps(report, indent=1, sort_keys=True) if as_json
               else format_status(report))
    sys.exit(exit_code(report))


COMMANDS: list[click.Command] = [features, inspect, import_npy, export_npy, convert, combine,
                                 status]
