"""`weakfeat --help` and the data / pipelines commands start without torch (about 3 s a call):
the stage groups import a command's module only when that command is asked for."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_manifests.cli import data
from data_manifests.lazy_group import LazyGroup
from data_manifests.schema import Manifest, ManifestMeta, VideoRecord, write_manifest
from downstream.cli import downstream
from extract.cli import extract

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "zarr", "h5py", "dask", "matplotlib", "extract.backbones",
         "extract.training.loop", "downstream.tal")


def heavy_after(code: str) -> list[str]:
    """The HEAVY modules imported by running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_importing_the_root_cli_imports_no_heavy_module():
    assert heavy_after("import pipelines.main") == []


def test_weakfeat_help_exits_0_and_lists_the_groups():
    script = Path(sys.executable).with_name("weakfeat")
    command = ([str(script)] if script.exists()
               else [sys.executable, "-m", "pipelines.main"])
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=ROOT,
                            check=False)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:")[1].split()
    assert {"data", "extract", "downstream", "pipelines"} <= set(listed)


@pytest.mark.parametrize("args", [
    ["--help"], ["data", "--help"], ["data", "build", "--help"], ["pipelines", "list"],
    ["pipelines", "run", "--help"], ["downstream", "evaluate", "--help"],
    ["downstream", "train", "--help"], ["downstream", "predict", "--help"]])
def test_light_commands_import_no_torch(args):
    code = ("from pipelines.main import cli\n"
            f"cli({args!r}, prog_name='weakfeat', standalone_mode=False)")
    assert heavy_after(code) == []


def test_a_data_command_runs_without_torch(tmp_path):
    videos = tuple(VideoRecord(f"v{i}", None, "train" if i else "test", 10.0, 30.0, 300, ("a",))
                   for i in range(3))
    folder = write_manifest(Manifest(ManifestMeta("toy", ("a",)), videos), tmp_path / "m")
    code = ("from pipelines.main import cli\n"
            f"cli(['data', 'stats', '--json', {str(folder)!r}], standalone_mode=False)")
    assert heavy_after(code) == []


@pytest.mark.parametrize("group", [data, extract, downstream], ids=lambda g: g.name)
def test_each_group_names_exactly_its_modules_commands(group):
    assert isinstance(group, LazyGroup)
    for module, names in group.sources.items():
        assert tuple(c.name for c in importlib.import_module(module).COMMANDS) == names, module
    listing = CliRunner().invoke(group, ["--help"])
    assert listing.exit_code == 0
    shown = {line.split()[0] for line in listing.output.split("Commands:")[1].splitlines()
             if line.strip()}
    assert shown == {name for names in group.sources.values() for name in names}


def test_a_command_missing_from_the_names_is_still_found():
    import click

    group = LazyGroup(name="toy", sources={"data_manifests.converters.commands": ("build",),
                                           "data_manifests.synthetic.commands": ()})
    ctx = click.Context(group)
    assert group.get_command(ctx, "build").name == "build"
    assert "synth" not in group.commands  # only the module holding "build" was imported
    assert group.get_command(ctx, "synth").name == "synth"  # found by importing the rest
    assert group.get_command(ctx, "nope") is None
    assert group.list_commands(ctx) == ["build", "stats", "synth", "validate"]
