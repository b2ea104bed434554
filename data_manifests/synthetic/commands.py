"""`weakfeat data synth`: the synthetic long-video benchmark."""

from __future__ import annotations

import click
import yaml

from data_manifests.schema import load_manifest
from data_manifests.synthetic.summary import summarize, summary_paragraph


@click.command(name="synth")
@click.option("--preset", required=True, help="tiny | demo | source | charades-like | "
                                              "breakfast-like | thumos-like")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for meta.json, videos.jsonl and videos/*.mp4")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--videos", "num_videos", default=None, type=click.IntRange(min=1),
              help="total number of videos (split in the preset's proportions)")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="override a SynthSpec field, e.g. --set coverage=[0.03,0.15]")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def synth(preset: str, out_dir: str, seed: int, num_videos: int | None, sets: tuple[str, ...],
          no_progress: bool) -> None:
    """Render a synthetic benchmark (mp4 + manifest) and print its statistics."""
    overrides = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected FIELD=VALUE", param_hint="--set")
        overrides[key.strip()] = yaml.safe_load(value)
    from data_manifests.synthetic.generate import generate_benchmark  # heavy: av, numpy

    out = generate_benchmark(preset, out_dir, seed=seed, num_videos=num_videos,
                             overrides=overrides, progress=not no_progress)
    click.echo(summary_paragraph(summarize(load_manifest(out)), str(out)))


COMMANDS: list[click.Command] = [synth]
