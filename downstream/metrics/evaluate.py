"""`downstream evaluate` as a plain function: task name + files -> one dict; plus rendering."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from data_manifests import json_text
from downstream.metrics import EVALUATORS
from downstream.metrics.errors import MetricInputError

# The options each task accepts (option name -> command-line flag, for error messages).
TASK_OPTIONS: dict[str, dict[str, str]] = {
    "tal": {"subset": "--subset", "tiou": "--tiou"},
    "cls": {"subset": "--subset", "classes": "--classes"},
    "seg": {"subset": "--subset", "background": "--background"},
    "tsg": {"subset": "--subset", "recall": "--recall", "iou": "--iou", "nms": "--nms"},
}
FLAGS = {name: flag for options in TASK_OPTIONS.values() for name, flag in options.items()}


def evaluate(task: str, ground_truth: str | Path, predictions: str | Path,
             **options: Any) -> dict:
    """Run TASK's evaluator; options a task does not take are an error naming the flag."""
    if task not in EVALUATORS:
        raise MetricInputError(f"unknown task {task!r}; choose from {sorted(EVALUATORS)}")
    foreign = [FLAGS.get(name, name) for name in options if name not in TASK_OPTIONS[task]]
    if foreign:
        raise MetricInputError(f"{', '.join(foreign)} does not apply to task {task!r} (its options: "
                         f"{', '.join(TASK_OPTIONS[task].values())})")
    return {"task": task, **EVALUATORS[task](ground_truth, predictions, **options)}


def to_json(result: dict) -> str:
    """One JSON object; NaN (undefined AP) becomes ``null`` so that the output is valid JSON."""
    return json_text.dumps(result, indent=1)


def format_table(result: dict) -> str:
    """A short human-readable table of the headline numbers (fractions, 4 decimals)."""
    rows: list[tuple[str, Any]] = []
    if result["task"] == "tal":
        rows += [(f"mAP@{t:g}", m) for t, m in zip(result["tiou"], result["mAP"])]
        rows.append(("average_mAP", result["average_mAP"]))
    elif result["task"] == "cls":
        rows += [(key, result[key]) for key in ("mAP", "wAP", "mAP_nanmean")]
    else:
        rows += [(key, value) for key, value in result.items()
                 if key != "task" and isinstance(value, float)]
    rows += [(key, value) for key, value in result.items() if key.startswith("num_")]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_cell(value)}" for name, value in rows)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)
