"""The ``weakfeat`` console script: one root group over the four stage groups."""

import logging

import click

from data_manifests.cli import data
from data_manifests.errors import ReportingGroup
from downstream.cli import downstream
from extract.cli import extract
from pipelines.cli import pipelines
from pipelines.runner import end_with_runner


@click.group(cls=ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """weakfeat: weakly supervised long-video features (AdaptFocus) and downstream tasks."""
    end_with_runner()
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


cli.add_command(data)
cli.add_command(extract)
cli.add_command(downstream)
cli.add_command(pipelines)


if __name__ == "__main__":
    cli(prog_name="weakfeat")
