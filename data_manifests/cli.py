"""`weakfeat data`: build, check and synthesize dataset manifests.

The command modules are imported when one of their commands runs (``LazyGroup``), so that
`weakfeat --help` stays fast.
"""

import click

from data_manifests.lazy_group import LazyGroup


@click.group(name="data", cls=LazyGroup, sources={
    "data_manifests.converters.commands": ("build", "stats", "validate"),
    "data_manifests.synthetic.commands": ("synth",),
})
def data() -> None:
    """Dataset manifests: build from official annotations, stats, validate, synthesize."""
