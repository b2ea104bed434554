"""A run folder: everything one training run writes, and nothing outside it.

``config.yaml`` (resolved), ``metrics.jsonl`` (one JSON object per logged step),
``checkpoints/`` (written under a temporary name and renamed, so a crash never leaves a
half-written checkpoint under the real name), ``predictions/``, ``results.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from data_manifests import json_text
from data_manifests.config import ConfigError, dump_config, to_dict
from data_manifests.errors import UserError, full_disk_names

log = logging.getLogger(__name__)

# What a resumed run may change: how long it trains and where, never what it trains (the
# results would then describe neither config).
RESUMABLE_CHANGES = frozenset({"train.epochs", "train.device", "data.num_workers",
                               "data.cache_features"})


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
        """Make the folder; refuse to reuse a finished or started run unless resuming, and a
        resume whose config differs from the run's beyond :data:`RESUMABLE_CHANGES`."""
        if self.config_path.exists() and not resume:
            raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue "
                                  "it, or choose another --out")
        if resume and self.config_path.exists():
            changed = config_changes(yaml.safe_load(self.config_path.read_text()) or {},
                                     to_dict(config))
            refused = {k: v for k, v in changed.items() if k not in RESUMABLE_CHANGES}
            if refused:
                shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
                raise ConfigError(f"{self.config_path}: --resume with a different config "
                                  f"({shown}); a resumed run may change only "
                                  f"{', '.join(sorted(RESUMABLE_CHANGES))}. Start a new --out "
                                  "for other changes")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._remove_dead_temporaries()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.predictions.mkdir(exist_ok=True)
        dump_config(config, self.config_path)

    def _lock(self) -> None:
        """Claim the folder for this process (``.lock``: host and pid). A live trainer on this
        host holding it is refused, so two trainers never write one run; a dead one's lock
        (crash, kill) is taken over. Another host's lock cannot be checked and is taken over
        with a warning."""
        lock, me = self.path / ".lock", f"{socket.gethostname()} {os.getpid()}"
        if lock.exists():
            host, _, pid = lock.read_text().strip().rpartition(" ")
            if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() \
                    and _alive(int(pid)):
                raise RunInUseError(f"{self.path}: another trainer (pid {pid}) is writing this "
                                    "run; wait for it or stop it, or choose another --out")
            if host != socket.gethostname():
                log.warning("%s: taking over the lock of %s (another host)", self.path, host)
        atomic_write_text(lock, me + "\n")

    def _remove_dead_temporaries(self) -> None:
        """Half-written files of a killed trainer (SIGKILL runs no cleanup): the lock is ours,
        so no live writer of this run can own them."""
        for folder in (self.path, self.checkpoints):
            for tmp in folder.glob(".*.tmp-*") if folder.is_dir() else ():
                log.info("%s: removing %s, left by a killed writer", self.path, tmp.name)
                tmp.unlink(missing_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (NaN/inf written as null, so the file stays valid JSON)."""
        with self.metrics_path.open("a") as fh:
            fh.write(json_text.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_path.exists():
            return iter(())
        with self.metrics_path.open() as fh:
            return iter([json.loads(line) for line in fh if line.strip()])

    def write_results(self, results: dict[str, Any], name: str = "results.json") -> Path:
        out = self.path / name
        atomic_write_text(out, json_text.dumps(results, indent=1, sort_keys=True) + "\n")
        return out


class CheckpointError(UserError):
    """A checkpoint file that cannot be read (truncated, empty, not a checkpoint)."""


def write_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` of ``payload`` to ``path``, atomically. Serialized in memory first: torch's
    own file writer turns a full disk into a RuntimeError without the errno ("unexpected pos"),
    while a plain write raises the OSError (ENOSPC / EFBIG, with the file) that every command
    reports in one line; and a failed write leaves the previous checkpoint in place."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_target(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read_checkpoint(path: str | Path, *, needs: tuple[str, ...] = (), map_location: Any = "cpu",
                    weights_only: bool = False) -> dict[str, Any]:
    """``torch.load`` of a run's checkpoint; a damaged file or one without the ``needs`` keys
    is a one-line :class:`CheckpointError` naming the file (torch's own message is a page, and
    an empty file raises EOFError, which click shows as a bare "Aborted!")."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    try:
        saved = torch.load(path, map_location=map_location, weights_only=weights_only)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({path.stat().st_size} bytes;"
                              f" {reason[:120]}); restore it, or delete the run folder to start "
                              "again") from exc
    missing = [key for key in needs if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise CheckpointError(f"{path}: not a weakfeat checkpoint (no {', '.join(missing)})")
    return saved


class RunInUseError(UserError):
    """Another live process is training into the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def config_changes(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old, new) for every leaf where two plain config dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(old) | set(new), key=str):
            out.update(config_changes(old.get(key), new.get(key), f"{prefix}{key}."))
        return out
    return {} if old == new else {prefix.rstrip("."): (old, new)}


@contextlib.contextmanager
def new_run_or_nothing(out: str | Path) -> Iterator[None]:
    """Run a training command that makes the run folder ``out``: if the command fails before
    its first checkpoint (bad data found while reading, a mistake, Ctrl-C) and ``out`` did not
    exist before, the folder is removed, so the corrected command starts cleanly instead of
    being told to pass --resume. A folder that existed, or holds a checkpoint, is kept."""
    out = Path(out)
    existed = out.exists()
    try:
        yield
    except BaseException:
        if not existed and out.is_dir() and not any((out / "checkpoints").glob("*.pt")):
            shutil.rmtree(out, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write to: it replaces ``path`` when the block ends,
    and is removed when the block fails (a full disk, a kill signal turned into an exception),
    so that ``path`` is either the old file or the whole new one, and no temporary stays."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with full_disk_names(path):  # a failed write() names no file
            yield tmp
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
