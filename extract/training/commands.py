"""`weakfeat extract train|evaluate`: stage-1 training (full / noisy / adaptfocus)."""

import json
import logging
import math
from pathlib import Path

import click

COMMANDS: list[click.Command] = []


@click.command("train")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="YAML config (see extract/training/configs/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set optim.lr=3e-4 (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def train_command(config_path: str, overrides: tuple[str, ...], out: str, resume: bool) -> None:
    """Train a backbone on long videos; writes config.yaml, checkpoints/, metrics.jsonl."""
    from data_manifests.run_folder import RunFolder, new_run_or_nothing
    from extract.training.config import load_stage1_config
    from extract.training.evaluate import evaluate_run
    from extract.training.loop import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_stage1_config(config_path, overrides)
        with new_run_or_nothing(out):
            run = train(config, out, resume=resume)
    # A diverging loss is the settings' fault, not a bug: its message names the fix. (The
    # project's own errors become one-line messages at the root command, data_manifests.errors.)
    except FloatingPointError as exc:
        raise click.ClickException(str(exc)) from exc
    if config.eval.split:  # the run's own evaluation, as its config asks (results.json, plots)
        result = evaluate_run(run, config.data.manifest, split=config.eval.split,
                              views=f"{config.eval.views_t}x{config.eval.views_s}",
                              videos_root=config.data.videos_root, device=config.train.device,
                              plot_videos=config.eval.plot_videos)
        if result is None:  # a torchrun rank other than 0: rank 0 writes and reports
            return
        RunFolder(run).write_results(result)
        click.echo(result_line(result, run))
        return
    click.echo(f"stage-1 {config.train.mode}: trained, not evaluated (eval.split is empty); "
               f"run {run}")


def result_line(result: dict, run) -> str:
    """The one line a user waits for at the end of `extract train` (its evaluation's headline:
    mAP in %, with the views; over the classes present when some class has no test video; the
    top-1 success when the videos have segments)."""
    mAP, which = result["mAP"], "mAP"
    if math.isnan(mAP):  # a class without positives (few test videos)
        mAP, which = result["mAP_nanmean"], "mAP (classes present)"
    line = (f"stage-1 {result['mode']}: {result['split']} {which} {100 * mAP:.1f} "
            f"({result['views']} views)")
    if result.get("top1_success") is not None:
        line += f", top-1 success {result['top1_success']:.2f}"
    return f"{line}; run {run}"


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--manifest", required=True, type=click.Path(exists=True), help="Manifest folder.")
@click.option("--split", default="test", show_default=True)
@click.option("--views", default="10x3", show_default=True, help="view_t x view_s (s: 1 or 3).")
@click.option("--videos-root", default=None, type=click.Path(exists=True, file_okay=False))
@click.option("--device", default="auto", show_default=True)
def evaluate_command(run_dir: str, manifest: str, split: str, views: str,
                     videos_root: str | None, device: str) -> None:
    """Video-level mAP (Charades conventions) of a run; writes results.json and PNG plots."""
    from data_manifests.run_folder import RunFolder
    from extract.training.config import load_stage1_config
    from extract.training.evaluate import evaluate_run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = evaluate_run(run_dir, manifest, split=split, views=views, videos_root=videos_root,
                          device=device)
    if result is None:  # a torchrun rank other than 0
        return
    # results.json belongs to the split the run's config evaluates (pipelines gather it); any
    # other split, e.g. `--split train` to see how the model localizes on its own training
    # videos, gets its own file instead of overwriting it.
    own_split = load_stage1_config(Path(run_dir) / "config.yaml").eval.split
    name = "results.json" if split == own_split else f"results_{split}.json"
    RunFolder(run_dir).write_results(result, name)
    summary = {k: v for k, v in result.items() if k != "ap_per_class"}
    click.echo(json.dumps(summary, indent=1, sort_keys=True))


COMMANDS.extend([train_command, evaluate_command])
