"""`weakfeat data build|stats|validate`: manifests from the official annotation files."""

import click

COMMANDS: list[click.Command] = []
