"""`matrix:` steps: one step per combination, the same steps as written out by hand."""

from __future__ import annotations

import pytest

from pipelines.recipe import RecipeError, load_recipe
from tests.pipelines.test_runner import write_recipe

BY_HAND = """
    name: toy
    steps:
      - id: export-a
        command: [echo, a, --out, "{out}"]
      - id: export-b
        command: [echo, b, --out, "{out}"]
      - id: fit-mil-a
        needs: [export-a]
        seeds: [0, 1]
        command: [echo, mil, "{export-a}/f.zarr", "{seed}", --out, "{out}"]
      - id: fit-mil-b
        needs: [export-b]
        seeds: [0, 1]
        command: [echo, mil, "{export-b}/f.zarr", "{seed}", --out, "{out}"]
      - id: fit-asl-a
        needs: [export-a]
        seeds: [0, 1]
        command: [echo, asl, "{export-a}/f.zarr", "{seed}", --out, "{out}"]
      - id: fit-asl-b
        needs: [export-b]
        seeds: [0, 1]
        command: [echo, asl, "{export-b}/f.zarr", "{seed}", --out, "{out}"]
"""

MATRIX = """
    name: toy
    steps:
      - id: export-a
        command: [echo, a, --out, "{out}"]
      - id: export-b
        command: [echo, b, --out, "{out}"]
      - id: fit-{method}-{store}
        matrix: {method: [mil, asl], store: [a, b]}
        needs: ["export-{store}"]
        seeds: [0, 1]
        command: [echo, "{method}", "{export-{store}}/f.zarr", "{seed}", --out, "{out}"]
"""


def test_a_matrix_expands_to_the_steps_written_by_hand(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    hand = load_recipe(write_recipe(tmp_path / "x", BY_HAND), tmp_path / "out")
    matrix = load_recipe(write_recipe(tmp_path / "y", MATRIX), tmp_path / "out")
    assert [(s.id, s.commands, s.needs, s.key) for s in matrix.steps] == [
        (s.id, s.commands, s.needs, s.key) for s in hand.steps]
    assert [s.id for s in matrix.steps][2:4] == ["fit-mil-a-s0", "fit-mil-a-s1"]


@pytest.mark.parametrize(("step", "message"), [
    ('id: fit-{method}\n        matrix: {method: [a], store: [b]}', r"add \{store\}"),
    ("id: fit-{method}\n        matrix: {method: []}", "non-empty lists"),
    ('id: fit\n        seeds: "zero"', "list of integers"),
])
def test_bad_matrices_and_seeds_are_named(tmp_path, step, message):
    text = f"""
    name: toy
    steps:
      - {step}
        command: [echo, --out, "{{out}}"]
    """
    with pytest.raises(RecipeError, match=message):
        load_recipe(write_recipe(tmp_path, text), tmp_path / "out")
