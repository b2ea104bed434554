"""The recipe runner: order, keys, caching, resume, failure isolation, tables."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines import runner
from pipelines.recipe import RecipeError, load_recipe
from pipelines.tables import build_table, render_markdown

# Stands in for `weakfeat ARGS`: "emit OUT VALUE" writes results, "fail" exits 3,
# "append OUT WORD..." records the arguments it got (to see --resume).
FAKE = textwrap.dedent("""
    import json, sys, pathlib
    cmd, *rest = sys.argv[1:]
    if cmd == "fail":
        sys.exit(3)
    out = pathlib.Path(rest[0]); out.mkdir(parents=True, exist_ok=True)
    if cmd == "emit":
        (out / "results.json").write_text(json.dumps({"mAP": float(rest[1])}))
    if cmd == "append":
        with open(out / "calls.txt", "a") as fh:
            fh.write(" ".join(rest[1:]) + "\\n")
        if "--resume" not in rest and (out / "crash-once").exists():
            sys.exit(9)
""")


@pytest.fixture
def fake_weakfeat(monkeypatch):
    monkeypatch.setattr(runner, "weakfeat_command",
                        lambda args: [sys.executable, "-c", FAKE, *args])


def write_recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


RECIPE = """
    name: toy
    description: toy recipe
    steps:
      - id: train
        needs: [data]
        seeds: [0, 1]
        command: [emit, "{out}", "0.{seed}5"]
        results: results.json
      - id: data
        command: [emit, "{out}", "0.5"]
      - id: other
        needs: [data]
        command: [emit, "{out}", "0.9"]
        results: results.json
    tables:
      - name: t
        metric: mAP
        scale: 100
        rows: {tiny: {A: train, B: other}}
        deltas: [[B, A]]
        paper: {big: {A: 10.0, B: 12.5}}
"""


def test_steps_run_in_dependency_order_and_are_cached(tmp_path, fake_weakfeat):
    recipe = load_recipe(write_recipe(tmp_path, RECIPE), tmp_path / "out")
    ids = [s.id for s in recipe.steps]
    assert ids.index("data") < ids.index("train-s0") and ids.index("data") < ids.index("other")
    first = runner.run_recipe(recipe, tmp_path / "out", echo=lambda *_: None)
    assert first.ok and {o.status for o in first.outcomes} == {"done"}
    again = runner.run_recipe(recipe, tmp_path / "out", echo=lambda *_: None)
    assert {o.status for o in again.outcomes} == {"cached"}


def test_changing_a_command_reruns_it_and_its_dependants_only(tmp_path, fake_weakfeat):
    root = tmp_path / "out"
    runner.run_recipe(load_recipe(write_recipe(tmp_path, RECIPE), root), root, echo=lambda *_: None)
    changed = RECIPE.replace('[emit, "{out}", "0.5"]', '[emit, "{out}", "0.6"]')
    report = runner.run_recipe(load_recipe(write_recipe(tmp_path, changed), root), root,
                               echo=lambda *_: None)
    assert {o.step.id: o.status for o in report.outcomes} == {
        "data": "done", "train-s0": "done", "train-s1": "done", "other": "done"}
    unrelated = changed.replace('"0.9"', '"0.8"')
    report = runner.run_recipe(load_recipe(write_recipe(tmp_path, unrelated), root), root,
                               echo=lambda *_: None)
    assert {o.step.id: o.status for o in report.outcomes}["train-s0"] == "cached"
    assert {o.step.id: o.status for o in report.outcomes}["other"] == "done"


def test_failed_step_blocks_dependants_and_keeps_finished_work(tmp_path, fake_weakfeat):
    text = RECIPE.replace('command: [emit, "{out}", "0.5"]', 'command: [fail]')
    root = tmp_path / "out"
    report = runner.run_recipe(load_recipe(write_recipe(tmp_path, text), root), root,
                               echo=lambda *_: None)
    status = {o.step.id: o.status for o in report.outcomes}
    assert status == {"data": "failed", "train-s0": "blocked", "train-s1": "blocked",
                      "other": "blocked"}
    assert not report.ok and "exit 3" in report.summary()


def test_interrupted_step_is_resumed_with_its_resume_arguments(tmp_path, fake_weakfeat):
    text = """
        steps:
          - id: long
            command: [append, "{out}", "go"]
            resume: [--resume]
    """
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, text), root)
    folder = recipe.steps[0].folder(root)
    folder.mkdir(parents=True)
    (folder / "crash-once").write_text("")
    assert runner.run_recipe(recipe, root, echo=lambda *_: None).outcomes[0].status == "failed"
    assert runner.run_recipe(recipe, root, echo=lambda *_: None).outcomes[0].status == "done"
    assert (folder / "calls.txt").read_text().splitlines() == ["go", "go --resume"]


def test_results_and_tables_average_seeds_and_show_paper_rows(tmp_path, fake_weakfeat):
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, RECIPE), root)
    runner.run_recipe(recipe, root, echo=lambda *_: None)
    results = runner.gather_results(recipe, root)
    assert {r["step"] for r in results.values()} == {"train", "other"}
    header, body = build_table(recipe.tables[0], results)
    assert header == ["", "A", "B", "B - A"]
    tiny = body[0]
    assert tiny[1].values == pytest.approx((5.0, 15.0)) and tiny[1].mean == pytest.approx(10.0)
    assert tiny[2].mean == pytest.approx(90.0)
    assert tiny[3].values == pytest.approx((85.0,))  # zipped pairs: one "other" run
    assert body[1][0] == "big (paper)" and body[1][3].mean == pytest.approx(2.5)
    markdown = render_markdown(recipe.tables[0], results)
    assert "| tiny | 10.0 ± 7.1 (2) | 90.0 |" in markdown


@pytest.mark.parametrize("text, message", [
    ("steps:\n  - id: a\n    command: [x]\n    needs: [b]\n", "unknown step 'b'"),
    ("steps:\n  - id: a\n    command: [x]\n    needs: [a]\n", "dependency cycle"),
    ("steps:\n  - id: a\n    command: [x, '{nope}']\n", "unknown placeholder {nope}"),
    ("steps:\n  - id: a\n    command: [x]\n    colour: red\n", "unknown key(s) ['colour']"),
])
def test_malformed_recipes_are_named(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")
                       .replace("}", r"\}")):
        load_recipe(write_recipe(tmp_path, text), tmp_path / "out")


def test_keys_do_not_depend_on_the_output_location(tmp_path):
    path = write_recipe(tmp_path, RECIPE)
    a = load_recipe(path, tmp_path / "one")
    b = load_recipe(path, tmp_path / "two")
    assert [s.key for s in a.steps] == [s.key for s in b.steps]


def test_results_json_written_by_cli_outputs(tmp_path, fake_weakfeat):
    from pipelines.cli import write_outputs
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, RECIPE), root)
    runner.run_recipe(recipe, root, echo=lambda *_: None)
    write_outputs(recipe, root, echo=lambda *_: None)
    saved = json.loads((root / "results.json").read_text())
    assert any(v["command"].startswith("weakfeat emit") for v in saved.values())
    assert (root / "tables" / "t.csv").read_text().startswith("table,row,column,mean,std,n")


def test_a_step_with_several_commands_fails_at_the_first_failing_one(tmp_path, fake_weakfeat):
    text = """
        steps:
          - id: chain
            commands: [[append, "{out}", "one"], [fail], [append, "{out}", "three"]]
    """
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, text), root)
    outcome = runner.run_recipe(recipe, root, echo=lambda *_: None).outcomes[0]
    assert outcome.status == "failed" and "exit 3 from `weakfeat fail`" in outcome.detail
    assert (recipe.steps[0].folder(root) / "calls.txt").read_text().splitlines() == ["one"]
    assert not runner.is_done(recipe.steps[0], root)


def test_metric_paths_index_lists():
    from pipelines.tables import metric_value
    results = {"mAP": [0.1, 0.2, 0.3], "average_mAP": 0.2}
    assert metric_value(results, "mAP.1") == 0.2
    assert metric_value(results, "mAP.7") is None
    assert metric_value(results, "average_mAP") == 0.2
    assert metric_value(results, "missing.key") is None


def test_editing_a_config_file_rekeys_its_step_and_dependants_only(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("lr: 0.1\n")
    text = RECIPE.replace('command: [emit, "{out}", "0.{seed}5"]',
                          f'command: [emit, "{{out}}", "0.{{seed}}5", "{config}"]')
    path = write_recipe(tmp_path, text)
    before = {s.id: s.key for s in load_recipe(path, tmp_path / "out").steps}
    config.write_text("lr: 0.2\n")
    after = {s.id: s.key for s in load_recipe(path, tmp_path / "out").steps}
    assert {i for i in before if before[i] != after[i]} == {"train-s0", "train-s1"}
    # A file inside the output folder (a needed step's product) is not hashed: it may not exist
    # yet when the recipe is loaded.
    inside = tmp_path / "out" / "made-by-a-step.txt"
    text = RECIPE.replace('command: [emit, "{out}", "0.9"]',
                          f'command: [emit, "{{out}}", "0.9", "{inside}"]')
    path = write_recipe(tmp_path, text)
    absent = {s.id: s.key for s in load_recipe(path, tmp_path / "out").steps}
    inside.parent.mkdir(parents=True)
    inside.write_text("x")
    assert absent == {s.id: s.key for s in load_recipe(path, tmp_path / "out").steps}
