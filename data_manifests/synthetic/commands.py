"""`weakfeat data synth`: the synthetic long-video benchmark."""

import click

COMMANDS: list[click.Command] = []
