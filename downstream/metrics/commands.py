"""`weakfeat downstream evaluate`: the field's metrics on standard files."""

import click

COMMANDS: list[click.Command] = []
