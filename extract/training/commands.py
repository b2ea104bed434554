"""`weakfeat extract train|evaluate`: stage-1 training (full / noisy / adaptfocus)."""

import click

COMMANDS: list[click.Command] = []
