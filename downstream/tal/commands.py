"""`weakfeat downstream train|predict`: weakly supervised temporal action localization."""

import json

import click

COMMANDS: list[click.Command] = []


@click.group(name="train")
def train() -> None:
    """Train a task model on a feature store."""


@train.command(name="tal")
# A plain string checked against downstream.tal.METHODS when the command runs, so that
# `weakfeat --help` need not import torch.
@click.option("--method", required=True, help="mil | asl | rskp | lacp")
@click.option("--features", required=True, help="feature store (.zarr or .h5)")
@click.option("--manifest", required=True, type=click.Path(exists=True), help="manifest folder")
@click.option("--out", required=True, type=click.Path(), help="run folder to create")
@click.option("--config", "config_path", type=click.Path(exists=True), default=None,
              help="YAML config (defaults otherwise)")
@click.option("--set", "overrides", multiple=True, help="config override key.sub=value")
@click.option("--resume", is_flag=True, help="continue the run in --out")
def train_tal_command(method, features, manifest, out, config_path, overrides, resume) -> None:
    """Temporal action localization: mil | asl | rskp | lacp (LACP needs point labels)."""
    from downstream.tal import METHODS
    from downstream.tal.train import train_tal

    if method not in METHODS:
        raise click.BadParameter(f"{method!r}; choose one of {sorted(METHODS)}",
                                 param_hint="--method")
    results = train_tal(method=method, features=features, manifest=manifest, out=out,
                        overrides=overrides, config_path=config_path, resume=resume)
    click.echo(json.dumps(results, indent=1, sort_keys=True))


@click.command(name="predict")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--features", required=True, help="feature store (.zarr or .h5)")
@click.option("--manifest", required=True, type=click.Path(exists=True), help="manifest folder")
@click.option("--split", default="test", show_default=True, help="manifest split to predict")
@click.option("--out", required=True, type=click.Path(), help="results JSON to write")
def predict_command(run, features, manifest, split, out) -> None:
    """Write ActivityNet-style localization results of a trained run."""
    from downstream.tal.predict import predict_tal

    click.echo(predict_tal(run, features=features, manifest=manifest, out=out, split=split))


COMMANDS += [train, predict_command]
