"""`weakfeat extract`: stage 1 (backbones, training, feature export and the store).

The command modules are imported when one of their commands runs (``LazyGroup``): their
packages import torch, zarr and h5py, which `weakfeat --help` should not pay for.
"""

import click

from data_manifests.lazy_group import LazyGroup


@click.group(name="extract", cls=LazyGroup, sources={
    "extract.backbones.commands": ("classify",),
    "extract.training.commands": ("train", "evaluate"),
    "extract.store.commands": ("features", "inspect", "import-npy", "export-npy", "convert",
                               "combine", "status"),
})
def extract() -> None:
    """Stage 1: train backbones on long videos (full / noisy / adaptfocus), export features."""
