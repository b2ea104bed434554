"""`weakfeat data build|stats|validate`: manifests from the official annotation files."""

import json
import sys
from pathlib import Path

import click

from data_manifests.converters import CONVERTERS
from data_manifests.converters.build import build_manifest
from data_manifests.schema import Manifest, load_manifest
from data_manifests.stats import format_stats, manifest_stats
from data_manifests.validate_videos import DURATION_TOLERANCE_S, summarize, validate_videos

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command(name="build")
@click.argument("dataset", type=click.Choice(sorted(CONVERTERS)))
@click.option("--annotations", required=True, type=_DIR,
              help="Folder holding the dataset's official annotation files.")
@click.option("--out", "out_dir", required=True, type=_DIR, help="Manifest folder to write.")
@click.option("--videos-root", type=_DIR, default=None,
              help="Folder of the video files: paths are matched to it, then all are checked.")
@click.option("--split-index", type=click.IntRange(1, 4), default=None,
              help="breakfast only: which of the 4 official splits (default 1).")
def build(dataset: str, annotations: Path, out_dir: Path, videos_root: Path | None,
          split_index: int | None) -> None:
    """Convert DATASET's official annotation files into a manifest folder."""
    options = {}
    if split_index is not None:
        if dataset != "breakfast":
            raise click.UsageError("--split-index is for breakfast only")
        options["split_index"] = split_index
    out = build_manifest(dataset, annotations, out_dir, videos_root=videos_root, **options)
    click.echo(f"wrote {out}")
    if videos_root is not None:
        _report_videos(load_manifest(out), videos_root, DURATION_TOLERANCE_S)


@click.command(name="stats")
@click.argument("manifest_dir", type=_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(manifest_dir: Path, as_json: bool) -> None:
    """Counts per split: videos, labels, classes, segments, points, sentences, activities."""
    result = manifest_stats(load_manifest(manifest_dir))
    click.echo(json.dumps(result, indent=1) if as_json else format_stats(result))


@click.command(name="validate")
@click.argument("manifest_dir", type=_DIR)
@click.option("--videos-root", type=_DIR, default=None,
              help="Folder the manifest's video paths are relative to (default: the manifest).")
@click.option("--tolerance", type=float, default=DURATION_TOLERANCE_S, show_default=True,
              help="Allowed duration difference in seconds.")
def validate(manifest_dir: Path, videos_root: Path | None, tolerance: float) -> None:
    """Check every video of a manifest: exists, decodes, duration matches. Lists every problem."""
    manifest = load_manifest(manifest_dir)
    _report_videos(manifest, videos_root, tolerance)


def _report_videos(manifest: Manifest, videos_root: Path | None, tolerance: float) -> None:
    """Print every problem and a summary; exit 1 when there is any."""
    problems = validate_videos(manifest, videos_root, tolerance_s=tolerance)
    click.echo(summarize(problems, sum(v.path is not None for v in manifest.videos)))
    if problems:
        sys.exit(1)


COMMANDS: list[click.Command] = [build, stats, validate]
