"""Recipes: a YAML list of steps, each one `weakfeat` command, expanded and keyed by content.

A recipe holds ``name``, ``description``, ``steps`` and optional ``tables`` (see
:mod:`pipelines.tables`). A step::

    - id: train-adaptfocus          # unique; {id} of a step names its output folder
      needs: [data, pretrain]       # steps whose outputs it reads
      seeds: [0, 1, 2]              # optional: one step per seed, ids get "-s<seed>"
      command: [extract, train, --config, "{extract_configs}/cfg.yaml", --out, "{out}",
                --set, "model.pretrained={pretrain}/checkpoints/last.pt", --set, "train.seed={seed}"]
      # or `commands: [[...], [...]]`: several commands run one after the other in one folder
      resume: [--resume]            # appended when an interrupted step is run again
      results: results.json         # JSON (inside {out}) gathered into results.json
      allow_exit: [1]               # exit codes that still count as done (e.g. partial failures)

Placeholders: ``{out}`` (this step's folder), ``{<step id>}`` (a needed step's folder; a seeded
step's id without the suffix means the same seed), ``{seed}``, ``{recipe_dir}``, ``{root}``
(the pipeline's output folder), ``{extract_configs}`` (the shipped stage-1 configs). A step's folder is ``<root>/<id>-<key>``, where the key hashes
its resolved command and the keys of what it needs: changing a config re-runs exactly the
steps downstream of it and nothing else.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_\-]+)\}")


class RecipeError(ValueError):
    """A recipe file is malformed; the message names the file and the step."""


@dataclass(frozen=True)
class Step:
    id: str
    commands: tuple[tuple[str, ...], ...]  # weakfeat argument lists, run in order; {out} unresolved
    needs: tuple[str, ...]
    key: str  # content hash: resolved command + keys of the needed steps
    resume: tuple[str, ...] = ()
    results: str | None = None
    allow_exit: tuple[int, ...] = ()
    seed: int | None = None
    base_id: str = ""  # id before seed expansion

    def folder(self, root: Path) -> Path:
        return root / f"{self.id}-{self.key[:10]}"


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path
    steps: tuple[Step, ...]  # in dependency order
    tables: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def step(self, step_id: str) -> Step:
        return {s.id: s for s in self.steps}[step_id]


def recipe_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = RECIPES_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise RecipeError(f"no recipe {str(name_or_path)!r}: give a .yaml path or one of: {known}")


def list_recipes() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped recipe."""
    out = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        out.append((path.stem, str(raw.get("description", "")).strip().splitlines()[0:1] or [""]))
    return [(name, desc[0]) for name, desc in out]


def load_recipe(name_or_path: str | Path, root: Path) -> Recipe:
    """Parse, expand seeds, order by dependencies and key every step."""
    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise RecipeError(f"{path}: a recipe is a mapping with a 'steps' list")
    unknown = set(raw) - {"name", "description", "steps", "tables"}
    if unknown:
        raise RecipeError(f"{path}: unknown top-level key(s) {sorted(unknown)}")
    specs = [_check_step(path, i, s) for i, s in enumerate(raw["steps"])]
    expanded = _expand_seeds(specs)
    ordered = _topological(path, expanded)
    steps: dict[str, Step] = {}
    for spec in ordered:
        steps[spec["id"]] = _resolve(path, spec, steps, root)
    return Recipe(name=str(raw.get("name", path.stem)), description=str(raw.get("description", "")),
                  path=path, steps=tuple(steps.values()), tables=tuple(raw.get("tables") or ()))


_STEP_KEYS = {"id", "needs", "seeds", "command", "commands", "resume", "results", "allow_exit"}


def _check_step(path: Path, index: int, spec: Any) -> dict[str, Any]:
    where = f"{path}: steps[{index}]"
    if not isinstance(spec, dict) or "id" not in spec or ("command" in spec) == ("commands" in spec):
        raise RecipeError(f"{where}: a step needs 'id' and one of 'command' or 'commands'")
    unknown = set(spec) - _STEP_KEYS
    if unknown:
        raise RecipeError(f"{where} ({spec['id']}): unknown key(s) {sorted(unknown)}")
    commands = spec.pop("commands", None) or [spec.pop("command")]
    if not all(isinstance(c, list) and c for c in commands):
        raise RecipeError(f"{where} ({spec['id']}): a command is a non-empty list of arguments")
    return dict(spec, commands=commands)


def _expand_seeds(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seeded = {s["id"]: s.get("seeds") for s in specs if s.get("seeds")}
    out = []
    for spec in specs:
        seeds = spec.get("seeds") or [None]
        for seed in seeds:
            step = dict(spec, base_id=spec["id"], seed=seed)
            if seed is not None:
                step["id"] = f"{spec['id']}-s{seed}"
            # A seeded step that needs another seeded step takes the same seed's copy.
            step["needs"] = [f"{n}-s{seed}" if seed is not None and seeded.get(n) else n
                             for n in spec.get("needs", [])]
            out.append(step)
    return out


def _topological(path: Path, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {}
    for spec in specs:
        if spec["id"] in by_id:
            raise RecipeError(f"{path}: duplicated step id {spec['id']!r}")
        by_id[spec["id"]] = spec
    order, state = [], {}

    def visit(step_id: str, chain: tuple[str, ...]) -> None:
        if state.get(step_id) == "done":
            return
        if state.get(step_id) == "active":
            raise RecipeError(f"{path}: dependency cycle {' -> '.join(chain + (step_id,))}")
        if step_id not in by_id:
            raise RecipeError(f"{path}: step {chain[-1]!r} needs unknown step {step_id!r}")
        state[step_id] = "active"
        for need in by_id[step_id]["needs"]:
            visit(need, chain + (step_id,))
        state[step_id] = "done"
        order.append(by_id[step_id])

    for spec in specs:
        visit(spec["id"], ())
    return order


def _extract_configs_dir() -> str:
    # Found without importing extract.training (which would import torch).
    spec = importlib.util.find_spec("extract")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations)), "training", "configs").resolve())


def _resolve(path: Path, spec: dict[str, Any], done: dict[str, Step], root: Path) -> Step:
    values = {"recipe_dir": str(path.parent.resolve()), "root": str(root.resolve()),
              "extract_configs": _extract_configs_dir()}
    if spec["seed"] is not None:
        values["seed"] = str(spec["seed"])
    for need in spec["needs"]:
        values[need] = str(done[need].folder(root).resolve())
        values.setdefault(done[need].base_id, values[need])

    def fill(arg: Any) -> str:
        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name == "out":
                return "{out}"  # known only when the step's key is
            if name not in values:
                raise RecipeError(f"{path}: step {spec['id']!r}: unknown placeholder {{{name}}} "
                                  f"(known: out, {', '.join(sorted(values))})")
            return values[name]
        return _PLACEHOLDER.sub(sub, str(arg))

    commands = tuple(tuple(fill(a) for a in command) for command in spec["commands"])
    keyed = {"commands": commands, "needs": [done[n].key for n in spec["needs"]]}
    # Folders of needed steps appear in the commands; hash without the root (and the install
    # location) so keys do not depend on where the pipeline output or the package lives.
    text = (json.dumps(keyed, sort_keys=True).replace(str(root.resolve()), "<root>")
            .replace(values["extract_configs"], "<extract_configs>")
            .replace(values["recipe_dir"], "<recipe_dir>"))
    return Step(id=spec["id"], commands=commands, needs=tuple(spec["needs"]),
                key=hashlib.sha256(text.encode()).hexdigest(),
                resume=tuple(str(a) for a in spec.get("resume", ())),
                results=spec.get("results"),
                allow_exit=tuple(int(c) for c in spec.get("allow_exit", ())),
                seed=spec["seed"], base_id=spec["base_id"])
