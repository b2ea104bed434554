"""Gather the PNG plots of a pipeline's finished steps into ``<root>/figures``.

Steps write their plots inside their own folders (stage-1 runs: ``plot_training.png`` with the
training curves and ``plot_<split>_<video>.png``, the paper's Figure 4 per-class curves; see
``extract/training/evaluate.py``). Each one is copied to ``figures/<step id>_<name>.png``, where
``name`` is its path inside the step folder with ``/`` turned into ``_``, and listed in
``figures/index.md`` under its step. The folder is rebuilt on every call: a figure of a step
that is no longer done (or no longer in the recipe) disappears.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from data_manifests.run_folder import atomic_write_text
from pipelines.recipe import Recipe
from pipelines.runner import is_done

FIGURES = "figures"
INDEX = "index.md"


def gather_figures(recipe: Recipe, root: Path) -> dict[str, list[Path]]:
    """Copy every done step's PNGs to ``root/figures``; returns step id -> copied files."""
    folder = root / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    gathered: dict[str, list[Path]] = {}
    for step in recipe.steps:
        source = step.folder(root)
        if not is_done(step, root):
            continue
        for png in sorted(source.rglob("*.png")):
            name = "_".join(png.relative_to(source).with_suffix("").parts)
            target = folder / f"{step.id}_{name}.png"
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(png, tmp)
            tmp.replace(target)
            gathered.setdefault(step.id, []).append(target)
    kept = {path.name for paths in gathered.values() for path in paths}
    for stale in folder.glob("*.png"):
        if stale.name not in kept:
            stale.unlink()
    atomic_write_text(folder / INDEX, _index(recipe, root, gathered))
    return gathered


def _index(recipe: Recipe, root: Path, gathered: dict[str, list[Path]]) -> str:
    lines = [f"# Figures of recipe {recipe.name}", ""]
    if not gathered:
        lines.append("No finished step has written a plot yet.")
    for step_id, paths in gathered.items():
        folder = recipe.step(step_id).folder(root).name
        lines += [f"## {step_id}", "", f"From `{folder}/`.", ""]
        for path in paths:
            lines += [f"**{_caption(path.stem[len(step_id) + 1:])}**", "",
                      f"![{path.stem}]({path.name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _caption(name: str) -> str:
    """What a stage-1 plot shows, from its file name (``plot_training``, ``plot_<split>_<id>``)."""
    if name == "plot_training":
        return "Training curves: loss, learning rate, ASE top-1 success, share above a_hat"
    if name.startswith("plot_"):
        split, _, video = name[len("plot_"):].partition("_")
        return (f"Figure 4: per-class prediction (red) and ground truth (black) over time, "
                f"video {video} ({split})")
    return name
