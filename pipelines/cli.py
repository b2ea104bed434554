"""`weakfeat pipelines`: recipes that run both stages and render the result tables."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from data_manifests import json_text
from data_manifests.errors import ReportingGroup
from data_manifests.run_folder import atomic_write_text
from pipelines.figures import gather_figures
from pipelines.recipe import (
    list_recipes,
    load_recipe,
    parse_params,
    require_params,
)
from pipelines.report import write_report
from pipelines.runner import gather_results, run_recipe
from pipelines.tables import render_csv, render_markdown


@click.group(name="pipelines", cls=ReportingGroup)
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
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a recipe parameter, e.g. --param videos=/data/charades (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Build the manifests into OUT/.dry-run, resolve every config, check the "
                   "videos root and print the plan with clip estimates; train nothing.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="N",
              help="Run up to N independent steps at once, each with OMP_NUM_THREADS and "
                   "MKL_NUM_THREADS = cores // N (unless set in the environment).")
def run_command(recipe: str, out: Path | None, params: tuple[str, ...], dry_run: bool,
                jobs: int) -> None:
    """Run RECIPE (a name from `pipelines list` or a .yaml path); re-running skips done steps
    and resumes interrupted ones (Ctrl-C stops the running steps; run again to resume)."""
    root = out or Path("runs") / Path(recipe).stem
    loaded = load_recipe(recipe, root, parse_params(params))
    if not dry_run:
        require_params(loaded)
    if dry_run:
        from pipelines.dry_run import plan_recipe

        plan = plan_recipe(loaded, root, echo=click.echo)
        if not plan.ok:
            sys.exit(1)
        return
    try:
        report = run_recipe(loaded, root, echo=click.echo, jobs=jobs)
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command again to resume", err=True)
        sys.exit(130)
    write_outputs(loaded, root, echo=click.echo)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def write_outputs(recipe, root: Path, echo=print) -> None:
    """results.json, every table as Markdown and CSV under ROOT/tables (printed), the
    finished steps' plots under ROOT/figures (with index.md), and all of it on one page,
    ROOT/report.html."""
    results = gather_results(recipe, root)
    atomic_write_text(root / "results.json", json_text.dumps(results, indent=1, sort_keys=True) + "\n")
    tables = root / "tables"
    tables.mkdir(exist_ok=True)
    for spec in recipe.tables:
        markdown = render_markdown(spec, results)
        atomic_write_text(tables / f"{spec['name']}.md", markdown)
        atomic_write_text(tables / f"{spec['name']}.csv", render_csv(spec, results))
        echo("\n" + markdown)
    figures = gather_figures(recipe, root)
    if figures:
        count = sum(len(paths) for paths in figures.values())
        echo(f"\n{count} figure(s) of {len(figures)} step(s): {root / 'figures' / 'index.md'}")
    report = write_report(recipe, root, results, figures)
    echo(("" if figures else "\n") + f"report (tables, figures, commands): {report}")
