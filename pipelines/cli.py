"""`weakfeat pipelines`: recipes that run both stages and render the result tables."""

import click


@click.group(name="pipelines")
def pipelines() -> None:
    """Recipes that chain stage 1 and stage 2 and render the paper's tables."""
