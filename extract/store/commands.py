"""`weakfeat extract features|inspect|import-npy|export-npy|convert|combine`: the feature store."""

import click

COMMANDS: list[click.Command] = []
