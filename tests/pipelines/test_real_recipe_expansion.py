"""The real-dataset recipes written with `matrix:`: their stage-1 and export steps expand to the
steps of the hand-written recipes they replaced, command for command; their stage-2 steps and
result tables fit together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from downstream.metrics.classification import multilabel_map
from downstream.metrics.grounding import recall_at_iou
from downstream.metrics.segmentation import evaluate_segmentation
from pipelines.recipe import Recipe, _extract_configs_dir, load_recipe
from pipelines.tables import build_table

# The hand-written recipes before the rewrite (`git show 13d1709:pipelines/recipes/<name>.yaml`),
# loaded and expanded: step id -> needs and command (its arguments joined by spaces, needed
# steps' folders written {step id}, parameters {name}).
GOLDEN = Path(__file__).parent / "golden" / "hand_written_recipe_steps.json"
OLD_STEPS = {name: {step_id: (tuple(step["needs"]), step["command"])
                    for step_id, step in steps.items()}
             for name, steps in json.loads(GOLDEN.read_text()).items()}

PARAMS = {"breakfast": {"annotations": "/nowhere/breakfast"},
          "charades": {"annotations": "/nowhere/charades",
                       "sta_annotations_dir": "/nowhere/charades_sta"}}


def expanded(recipe: Recipe, root: Path) -> dict[str, tuple]:
    """Every step as in OLD_STEPS: (needs, command, ...), placeholders put back."""
    back = [(str(s.folder(root).resolve()), f"{{{s.id}}}") for s in recipe.steps]
    back += [(_extract_configs_dir(), "{extract_configs}")]
    back += [(value, f"{{{name}}}") for name, value in recipe.params.items() if value]
    back.sort(key=lambda pair: -len(pair[0]))  # a path before the paths it is the start of
    out = {}
    for step in recipe.steps:
        commands = []
        for command in step.commands:
            assert not any(" " in arg for arg in command), command  # joining loses nothing
            text = " ".join(command)
            for real, placeholder in back:
                text = text.replace(real, placeholder)
            commands.append(text)
        out[step.id] = (step.needs, *commands)
    return out


@pytest.mark.parametrize("name", ["breakfast", "charades"])
def test_stage1_and_export_steps_expand_to_the_hand_written_ones(name, tmp_path):
    recipe = load_recipe(name, tmp_path / "out", PARAMS[name])
    new = expanded(recipe, tmp_path / "out")
    old = OLD_STEPS[name]
    assert {i for i in new if i == "data" or i.startswith(("train-", "export-"))} == set(old)
    for step_id, step in old.items():
        assert new[step_id] == step, step_id


# Stage 2: (task, methods, backbones, stores, seeds); the paper's Tables 3-5 and S1.
STAGE2 = {
    "breakfast": [("car", ("mlp", "timeception", "ghrm"), ("i3d", "mvit32"), 1),
                  ("seg", ("mstcn", "ltcontext"), ("i3d",), 1),
                  ("seg", ("poc",), ("i3d",), 3)],  # POC: average and max over three runs
    "charades": [("tsg", ("cpl", "d3g", "mmn"), ("i3d", "mvit32"), 1)],
}


@pytest.mark.parametrize("name", ["breakfast", "charades"])
def test_stage2_steps_cover_methods_x_stores_x_seeds_with_official_defaults(name, tmp_path):
    root = tmp_path / "out"
    recipe = load_recipe(name, root, PARAMS[name])
    steps = {s.id: s for s in recipe.steps if s.id.startswith(("car-", "seg-", "tsg-"))}
    wanted = {f"{task}-{method}-{backbone}-{store}-s{seed}"
              for task, methods, backbones, seeds in STAGE2[name] for method in methods
              for backbone in backbones for store in ("full", "kinc", "weak")
              for seed in range(seeds)}
    assert set(steps) == wanted
    assert len(recipe.steps) == {"breakfast": 13 + 18 + 15, "charades": 16 + 1 + 18}[name]
    for step_id, step in steps.items():
        task, method, backbone, store, _seed = step_id.split("-")
        export = recipe.step(f"export-{backbone}-{store}").folder(root).resolve()
        train, predict, evaluate = step.commands
        assert train[:5] == ("downstream", "train", task, "--method", method)
        assert f"{export}/features.zarr" in train and f"{export}/features.zarr" in predict
        # Each method's own defaults: only the seed and the device are set.
        sets = [train[i + 1] for i, arg in enumerate(train) if arg == "--set"]
        assert sets == [f"train.seed={step.seed}", "train.device=cuda"]
        assert evaluate[:3] == ("downstream", "evaluate", {"tsg": "tsg", "seg": "seg",
                                                           "car": "cls"}[task])
        assert "test" in predict and "test" in evaluate and step.results == "results.json"
        assert f"export-{backbone}-{store}" in step.needs


def _metric_keys() -> dict[str, set[str]]:
    """What each task's `downstream evaluate` writes, from the evaluators themselves."""
    return {
        "car": set(multilabel_map(np.array([[0.9, 0.1], [0.2, 0.8]]), np.eye(2))),
        "seg": set(evaluate_segmentation({"v": ["a", "b"]}, {"v": ["a", "a"]})),
        "tsg": set(recall_at_iou({("v", 0): (9.0, 0.0, 3.0)}, {("v", 0): [(0.0, 3.0, 1.0)]})),
    }


@pytest.mark.parametrize("name", ["breakfast", "charades"])
def test_tables_name_every_stage2_step_and_metrics_the_evaluators_write(name, tmp_path):
    recipe = load_recipe(name, tmp_path / "out", PARAMS[name])
    keys = _metric_keys()
    # Fake results: every stage-2 run wrote each of its evaluator's keys (0.5).
    results = {s.id: {"step": s.base_id, "seed": s.seed,
                      "results": dict.fromkeys(keys[s.id.split("-")[0]], 0.5)}
               for s in recipe.steps if s.id.split("-")[0] in keys}
    shown = set()
    for spec in recipe.tables:
        if all(not step.startswith(tuple(keys)) for row in spec["rows"].values()
               for step in row.values()):
            continue  # the stage-1 table
        header, body = build_table(spec, results)
        assert header[1:4] == ["Full-FEAT", "Kinc-FEAT", "Weak-FEAT"], spec["name"]
        assert header[4] == "Weak-FEAT - Kinc-FEAT"
        for row in body[:len(spec["rows"])]:
            assert all(cell.values for cell in row[1:]), (spec["name"], row[0])
        for row in spec["rows"].values():
            shown |= set(row.values())
        assert any(line[0].endswith("(paper)") for line in body), spec["name"]
    assert shown == {s.base_id for s in recipe.steps if s.id.split("-")[0] in keys}
    if name == "breakfast":  # POC's cells average its three runs
        table5 = next(spec for spec in recipe.tables if spec["name"] == "table5_breakfast_seg")
        assert [len(c.values) for c in build_table(table5, results)[1][0][1:4]] == [3, 3, 3]
