"""The quick start runs: both stages and all four tasks on the tiny preset, tables printed."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipelines.main import cli


def test_smoke_recipe_runs_every_stage_and_task(tmp_path):
    out = tmp_path / "smoke_out"
    result = CliRunner().invoke(cli, ["pipelines", "run", "smoke", "--out", str(out),
                                      "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "10 done" in result.output
    for row in ("tal MIL", "seg MS-TCN", "car MLP", "tsg MMN"):
        line = next(x for x in result.output.splitlines() if x.startswith(f"| {row}"))
        assert line.rsplit("|", 2)[1].strip() != "-", line  # a number, not a missing run
    results = json.loads((out / "results.json").read_text())
    assert {"tal-mil", "seg-mstcn", "car-mlp", "tsg-mmn", "train-adaptfocus"} <= set(results)
