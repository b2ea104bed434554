"""`weakfeat extract classify`: backbones on a video."""

import click

COMMANDS: list[click.Command] = []
