"""`weakfeat downstream`: stage 2 (task models on feature stores, and their metrics).

The command modules are imported when one of their commands runs (``LazyGroup``): training
imports torch, which `weakfeat --help` should not pay for.
"""

import click

from data_manifests.lazy_group import LazyGroup


@click.group(name="downstream", cls=LazyGroup, sources={
    "downstream.commands": ("train", "predict", "methods"),
    "downstream.metrics.commands": ("evaluate",),
})
def downstream() -> None:
    """Stage 2: train task models on feature stores; evaluate standard prediction files."""
