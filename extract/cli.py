"""`weakfeat extract`: stage 1 (backbones, training, feature export and the store)."""

import click

from extract.backbones.commands import COMMANDS as BACKBONE_COMMANDS
from extract.store.commands import COMMANDS as STORE_COMMANDS
from extract.training.commands import COMMANDS as TRAINING_COMMANDS


@click.group(name="extract")
def extract() -> None:
    """Stage 1: train backbones on long videos (full / noisy / adaptfocus), export features."""


for _command in (*BACKBONE_COMMANDS, *TRAINING_COMMANDS, *STORE_COMMANDS):
    extract.add_command(_command)
