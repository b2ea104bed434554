"""Checkpoints of a stage-2 run: written atomically, loaded with the config that made them.

A checkpoint holds the model's weights and what is needed to rebuild it without the training
data: the task, the method, the run config and ``model_args`` (the data-derived builder
arguments: feature dim, classes, a vocabulary, ...). ``last.pt`` adds the optimizer, the
scheduler, the training state and the RNG states (resume); ``best.pt`` is the model that scored
best on the validation split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from data_manifests.config import from_dict
from data_manifests.run_folder import RunFolder, read_checkpoint
from downstream.task import Task, TaskModel
from downstream.tasks import get_task
from downstream.training.config import config_class


def build_model(task: Task, config: Any, model_args: dict[str, Any]) -> TaskModel:
    """The method named by ``config.method`` with its own config section as arguments."""
    method = task.methods[config.method]
    return method.build(**model_args, **dataclasses.asdict(getattr(config, config.method)))


def load_trained(run_dir: str | Path, checkpoint: Literal["best", "last"] = "best",
                 device: str = "cpu") -> tuple[TaskModel, Any, dict[str, Any], Task]:
    """The model of a run (``best``: selected on validation, falling back to ``last`` when
    validation never ran), its config, the checkpoint's metadata and its task."""
    run = RunFolder(run_dir)
    names = ["best.pt", "last.pt"] if checkpoint == "best" else ["last.pt"]
    for name in names:
        path = run.checkpoints / name
        if path.exists():
            break
    else:
        raise FileNotFoundError(f"{run.path}: no checkpoints/{' or '.join(names)} (was it "
                                "trained with `weakfeat downstream train`?)")
    ckpt = read_checkpoint(path, map_location=device, needs=("config", "model", "model_args"))
    task = get_task(ckpt.get("task", "tal"))
    config = from_dict(config_class(task), ckpt["config"], source=str(path))
    model = build_model(task, config, ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), config, ckpt, task
