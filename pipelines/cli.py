"""`weakfeat pipelines`: recipes that run both stages and render the result tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from data_manifests.run_folder import atomic_write_text
from pipelines.recipe import RecipeError, list_recipes, load_recipe
from pipelines.runner import gather_results, run_recipe
from pipelines.tables import render_csv, render_markdown


@click.group(name="pipelines")
def pipelines() -> None:
    """Recipes that chain stage 1 and stage 2 and render the paper's tables."""


@pipelines.command("list")
def list_command() -> None:
    """The shipped recipes, one line each."""
    for name, description in list_recipes():
        click.echo(f"{name:24s} {description}")


@pipelines.command("run")
@click.argument("recipe")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: runs/<recipe name>).")
@click.option("--dry-run", is_flag=True, help="Print the plan; run nothing.")
def run_command(recipe: str, out: Path | None, dry_run: bool) -> None:
    """Run RECIPE (a name from `pipelines list` or a .yaml path); re-running skips done steps."""
    root = out or Path("runs") / Path(recipe).stem
    try:
        loaded = load_recipe(recipe, root)
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from exc
    report = run_recipe(loaded, root, dry_run=dry_run, echo=click.echo)
    if not dry_run:
        write_outputs(loaded, root, echo=click.echo)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def write_outputs(recipe, root: Path, echo=print) -> None:
    """results.json plus every table as Markdown and CSV under ROOT/tables; prints the tables."""
    results = gather_results(recipe, root)
    atomic_write_text(root / "results.json", json.dumps(results, indent=1, sort_keys=True) + "\n")
    tables = root / "tables"
    tables.mkdir(exist_ok=True)
    for spec in recipe.tables:
        markdown = render_markdown(spec, results)
        atomic_write_text(tables / f"{spec['name']}.md", markdown)
        atomic_write_text(tables / f"{spec['name']}.csv", render_csv(spec, results))
        echo("\n" + markdown)
