"""`weakfeat downstream`: stage 2 (task models on feature stores, and their metrics)."""

import click

from downstream.metrics.commands import COMMANDS as METRIC_COMMANDS
from downstream.tal.commands import COMMANDS as TAL_COMMANDS


@click.group(name="downstream")
def downstream() -> None:
    """Stage 2: train task models on feature stores; evaluate standard prediction files."""


for _command in (*TAL_COMMANDS, *METRIC_COMMANDS):
    downstream.add_command(_command)
