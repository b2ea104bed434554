"""`weakfeat downstream train|predict`: weakly supervised temporal action localization."""

import click

COMMANDS: list[click.Command] = []
