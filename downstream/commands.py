"""`weakfeat downstream train|predict|methods`: every stage-2 task through the same commands."""

import click

from downstream.tasks import TASKS


@click.command(name="train")
@click.argument("task", type=click.Choice(sorted(TASKS)))
# A plain string checked against the task's methods when the command runs, so that
# `weakfeat --help` need not import torch (`weakfeat downstream methods` lists them).
@click.option("--method", required=True, help="the task's method (see `downstream methods`)")
@click.option("--features", required=True, help="feature store (.zarr or .h5)")
@click.option("--manifest", required=True, type=click.Path(exists=True), help="manifest folder")
@click.option("--out", required=True, type=click.Path(), help="run folder to create")
@click.option("--config", "config_path", type=click.Path(exists=True), default=None,
              help="YAML config (the method's defaults otherwise)")
@click.option("--set", "overrides", multiple=True, help="config override key.sub=value")
@click.option("--resume", is_flag=True, help="continue the run in --out")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="progress bars and one line per epoch on stderr")
def train_command(task, method, features, manifest, out, config_path, overrides, resume,
                  progress) -> None:
    """Train METHOD of TASK (tal, seg, ...) on a feature store; selects on validation."""
    from data_manifests.run_folder import new_run_or_nothing
    from downstream.training import result_line, train_run

    with new_run_or_nothing(out):
        results = train_run(task=task, method=method, features=features, manifest=manifest,
                            out=out, overrides=overrides, config_path=config_path,
                            resume=resume, progress=progress)
    click.echo(result_line(results, out))


@click.command(name="predict")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--features", required=True, help="feature store (.zarr or .h5)")
@click.option("--manifest", required=True, type=click.Path(exists=True), help="manifest folder")
@click.option("--split", default="test", show_default=True, help="manifest split to predict")
@click.option("--out", required=True, type=click.Path(),
              help="predictions to write (the task's format: see the README)")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="best on validation, or the last epoch")
@click.option("--set", "overrides", multiple=True,
              help="override of the task's own sections, e.g. post.class_threshold=0.25 (tal)")
@click.option("--device", default="cpu", show_default=True, help="torch device")
@click.option("--progress/--no-progress", default=True, show_default=True)
def predict_command(run, features, manifest, split, out, checkpoint, overrides, device,
                    progress) -> None:
    """Write a trained run's predictions of SPLIT in its task's standard format."""
    from downstream.training import predict_run

    path = predict_run(run, features=features, manifest=manifest, out=out, split=split,
                       checkpoint=checkpoint, overrides=overrides, device=device,
                       progress=progress)
    click.echo(str(path))


@click.command(name="methods")
@click.argument("task", type=click.Choice(sorted(TASKS)), required=False)
def methods_command(task) -> None:
    """List each task's methods: paper, supervision, annotations and official defaults."""
    from downstream.tasks import get_task

    for name in [task] if task else sorted(TASKS):
        task_ = get_task(name)
        click.echo(f"{name}: {task_.title} (selects on val {task_.metric})")
        for method in task_.methods.values():
            needs = ", ".join(method.needs) or "video labels"
            defaults = " ".join(f"{k}={v}" for k, v in method.defaults.items())
            click.echo(f"  {method.name:<10} {method.summary} [trains on {needs}]"
                       + (f"\n  {'':<10} defaults: {defaults}" if defaults else ""))


COMMANDS: list[click.Command] = [train_command, predict_command, methods_command]
