"""Bad user input to the metric loaders: the error type and the checks that raise it.

Every message names the file and the item (video, annotation, query) and the bad value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from data_manifests.errors import UserError


class MetricInputError(UserError):
    """A ground-truth or prediction file has a bad value (the message names file and item)."""


def read_json(path: Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise MetricInputError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise MetricInputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): "
                               f"{exc.msg}") from exc


def require(obj: Any, key: str, path: Path, where: str) -> Any:
    """``obj[key]``, or an error naming the file, the item and the missing key."""
    if not isinstance(obj, dict) or key not in obj:
        raise MetricInputError(f"{path}: {where}: missing key {key!r}")
    return obj[key]


def number(value: Any, path: Path, where: str, name: str) -> float:
    """``float(value)``; strings such as THUMOS's ``"18.6"`` are accepted, NaN is not."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MetricInputError(f"{path}: {where}: {name} {value!r} is not a number") from None
    if math.isnan(out):
        raise MetricInputError(f"{path}: {where}: {name} is NaN")
    return out
