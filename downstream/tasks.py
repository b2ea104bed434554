"""The stage-2 tasks by name: the one list of them.

Each value is the module that defines the task's ``TASK`` object; it is imported when the task is
used, so that naming the tasks (CLI choices, `weakfeat --help`) costs no torch import.
"""

from __future__ import annotations

import importlib

from data_manifests.config import ConfigError

TASKS: dict[str, str] = {
    "tal": "downstream.tal.task",  # weakly supervised temporal action localization
    "seg": "downstream.seg.task",  # temporal action segmentation
    "car": "downstream.car.task",  # complex activity recognition
    "tsg": "downstream.tsg.task",  # temporal sentence grounding
}


def get_task(name: str):
    """The ``Task`` object named ``name`` (a ConfigError lists the known ones)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK
