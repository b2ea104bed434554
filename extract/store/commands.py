"""`weakfeat extract features|inspect|import-npy|export-npy|convert|combine`: the feature store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from extract.clip_grid import parse_clip, parse_shard

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
@click.option("--shard", default="0/1", show_default=True, help="i/N: this job's part")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="dask LocalCluster processes")
@click.option("--scheduler", default=None, help="address of an existing dask scheduler")
@click.option("--device", default="auto", show_default=True)
@click.option("--decode-threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="videos decoded concurrently (per process)")
@click.option("--videos-root", default=None, type=click.Path(file_okay=False))
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32")
@click.option("--codec", default=None, help="zarr: zstd (default), blosc-lz4, none; HDF5: none (default), lzf, gzip")
def features(run_dir, backbone, pretrained, manifest, store, split, clip, step, crops,
             batch_size, shard, workers, scheduler, device, decode_threads, videos_root, dtype,
             codec) -> None:
    """Export per-clip features of a manifest's videos into a store (resumable)."""
    from extract.store import export
    if (run_dir is None) == (backbone is None):
        raise click.UsageError("give exactly one of --run RUN_DIR and --backbone NAME")
    if workers and scheduler:
        raise click.UsageError("give at most one of --workers and --scheduler")
    try:
        summary = export.export_features(
            model_spec=export.ModelSpec(backbone=backbone, pretrained=pretrained, run_dir=run_dir),
            manifest=manifest, store=store, split=split,
            clip=parse_clip(clip) if clip else None, step=step, crops=int(crops),
            batch_size=batch_size, shard=parse_shard(shard), workers=workers,
            scheduler=scheduler, device=device, videos_root=videos_root, dtype=dtype, codec=codec,
            decode_threads=decode_threads)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.text())
    if summary.failures:
        sys.exit(1)


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


COMMANDS: list[click.Command] = [features, inspect, import_npy, export_npy, convert, combine]
