"""A run folder: everything one training run writes, and nothing outside it.

``config.yaml`` (resolved), ``metrics.jsonl`` (one JSON object per logged step),
``checkpoints/`` (written under a temporary name and renamed, so a crash never leaves a
half-written checkpoint under the real name), ``predictions/``, ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_manifests.config import dump_config


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    def create(self, config: Any, *, resume: bool) -> None:
        """Make the folder; refuse to reuse a finished or started run unless resuming."""
        if self.config_path.exists() and not resume:
            raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue "
                                  "it, or choose another --out")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.predictions.mkdir(exist_ok=True)
        dump_config(config, self.config_path)

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (NaN/inf written as null, so the file stays valid JSON)."""
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(clean, sort_keys=True) + "\n")

    def read_metrics(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_path.exists():
            return iter(())
        with self.metrics_path.open() as fh:
            return iter([json.loads(line) for line in fh if line.strip()])

    def write_results(self, results: dict[str, Any], name: str = "results.json") -> Path:
        out = self.path / name
        atomic_write_text(out, json.dumps(results, indent=1, sort_keys=True) + "\n")
        return out


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def atomic_target(path: str | Path) -> Path:
    """Temporary sibling of ``path`` to write to, then ``tmp.replace(path)``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")
