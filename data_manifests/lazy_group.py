"""A click group that imports a command's module only when that command is asked for.

``weakfeat --help`` shows the four stage groups; importing every ``commands.py`` for it would
import torch, zarr and h5py through their packages (seconds per call). Each group names the
modules holding its commands (their ``COMMANDS`` lists) and the command names each holds:
running a command, or asking for its ``--help``, imports its module only; listing a group
(``weakfeat extract --help``) imports them all. The names are a routing hint, not a second
registry: a command missing from them is still found (after importing every module), and
``tests/test_cli_startup.py`` keeps them equal to the ``COMMANDS`` lists.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import click

from data_manifests.errors import ReportingGroup


class LazyGroup(ReportingGroup):
    """``click.Group`` over ``sources``: ``{"pkg.commands": ("command name", ...)}``."""

    def __init__(self, *args: Any, sources: Mapping[str, Sequence[str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources = {module: tuple(names) for module, names in sources.items()}
        self._loaded: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            for module, names in self.sources.items():
                if name in names:
                    self._load(module)
        if name not in self.commands:
            self.load_all()
        return self.commands.get(name)

    def load_all(self) -> dict[str, click.Command]:
        """Import every source module; the group's commands by name."""
        for module in self.sources:
            self._load(module)
        return self.commands

    def _load(self, module: str) -> None:
        if module in self._loaded:
            return
        for command in importlib.import_module(module).COMMANDS:
            self.add_command(command)
        self._loaded.add(module)
