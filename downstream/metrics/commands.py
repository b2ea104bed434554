"""`weakfeat downstream evaluate`: the field's metrics on standard files."""

from pathlib import Path

import click

from data_manifests.run_folder import atomic_write_text
from downstream.metrics import EVALUATORS
from downstream.metrics.evaluate import evaluate, format_table, to_json


@click.command("evaluate")
@click.argument("task", type=click.Choice(sorted(EVALUATORS)))
@click.option("--ground-truth", "-g", required=True,
              type=click.Path(exists=True, path_type=Path),
              help="Manifest folder, or the task's GT file (ActivityNet JSON, Charades CSV, "
                   "MS-TCN groundTruth folder, grounding JSON).")
@click.option("--predictions", "-p", required=True, type=click.Path(exists=True, path_type=Path),
              help="Predictions in the task's standard format.")
@click.option("--subset", "--split", "subset", default=None,
              help="tal/cls/seg/tsg: evaluate one split (case-insensitive for tal; seg: with a manifest as GT).")
@click.option("--tiou", default=None,
              help="tal: thumos14 (0.1:0.7, default) | activitynet (0.5:0.95) | '0.3,0.5'.")
@click.option("--classes", type=click.Path(exists=True, path_type=Path), default=None,
              help="cls: Charades_v1_classes.txt (needed with a Charades CSV).")
@click.option("--background", multiple=True,
              help="seg: background label, repeatable (default: background).")
@click.option("--recall", default=None, help="tsg: recall ranks, e.g. '1,5' (default).")
@click.option("--iou", default=None, help="tsg: IoU thresholds, e.g. '0.5,0.7' (default).")
@click.option("--nms", type=float, default=None, help="tsg: NMS threshold (default 0.5).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON object to this file.")
def evaluate_command(task: str, ground_truth: Path, predictions: Path, as_json: bool,
                     out: Path | None, **options) -> None:
    """Evaluate PREDICTIONS against GROUND_TRUTH with TASK's official metric semantics."""
    given = {name: value for name, value in options.items() if value not in (None, ())}
    try:
        result = evaluate(task, ground_truth, predictions, **given)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None:
        atomic_write_text(out, to_json(result) + "\n")
    click.echo(to_json(result) if as_json else format_table(result))


COMMANDS: list[click.Command] = [evaluate_command]
