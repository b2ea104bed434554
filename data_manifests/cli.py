"""`weakfeat data`: build, check and synthesize dataset manifests."""

import click

from data_manifests.converters.commands import COMMANDS as CONVERTER_COMMANDS
from data_manifests.synthetic.commands import COMMANDS as SYNTH_COMMANDS


@click.group(name="data")
def data() -> None:
    """Dataset manifests: build from official annotations, stats, validate, synthesize."""


for _command in (*CONVERTER_COMMANDS, *SYNTH_COMMANDS):
    data.add_command(_command)
