"""JSON that every reader accepts: NaN and infinities become ``null``.

Python's ``json`` writes a bare ``NaN`` (an undefined AP, an empty split's score), which is not
JSON: ``jq`` and most other readers reject the file. Every results file of the project goes
through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (and numpy scalar) made ``None``, containers copied."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)``; refuses (ValueError) anything still not JSON."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
