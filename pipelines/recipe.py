"""Recipes: a YAML list of steps, each one `weakfeat` command, expanded and keyed by content.

A recipe holds ``name``, ``description``, ``steps`` and optional ``tables`` (see
:mod:`pipelines.tables`). A step::

    - id: train-adaptfocus          # unique; {id} of a step names its output folder
      needs: [data, pretrain]       # steps whose outputs it reads
      seeds: [0, 1, 2]              # optional: one step per seed, ids get "-s<seed>"
      matrix: {method: [mil, asl], store: [kinc, weak]}
                                    # optional: one step per combination, {method} and {store}
                                    # replaced in the id (which must name them all), needs,
                                    # commands and results, before the other placeholders
      command: [extract, train, --config, "{extract_configs}/cfg.yaml", --out, "{out}",
                --set, "model.pretrained={pretrain}/checkpoints/last.pt", --set, "train.seed={seed}"]
      # or `commands: [[...], [...]]`: several commands run one after the other in one folder
      resume: [--resume]            # appended when an interrupted step is run again
      results: results.json         # JSON (inside {out}) gathered into results.json
      allow_exit: [1]               # exit codes that still count as done (e.g. partial failures)
      slots: 2                      # optional (default 1): with --jobs N it takes 2 of the N
                                    # slots and 2/N of the cores (see :mod:`pipelines.runner`)

Placeholders: ``{out}`` (this step's folder), ``{<step id>}`` (a needed step's folder; a seeded
step's id without the suffix means the same seed), ``{seed}``, ``{recipe_dir}``, ``{root}``
(the pipeline's output folder), ``{extract_configs}`` (the shipped stage-1 configs), and the
recipe's parameters. A step's folder is ``<root>/<id>-<key>``, where the key hashes its
resolved command, the contents of the files it names outside the output folder (its config
YAMLs) and the keys of what it needs: editing a config re-runs exactly the steps downstream of
it and nothing else. Changes to weakfeat's own code do not re-key steps: after an upgrade, run
into a new output folder. ``slots`` only says how the step is scheduled, not what it
computes, so it is not part of the key.

Parameters: a recipe may declare ``params: {annotations: ../shared/data/annotations/x,
videos: null}`` (name -> default); ``weakfeat pipelines run RECIPE --param videos=/data/x``
overrides them and ``{videos}`` is replaced by the value. Path parameters (``annotations``,
``videos`` and names ending in ``_dir``, ``_root`` or ``_path``) are made absolute (relative to
the CWD) first, so a step key changes with the folder a path names, not with how it was
written. A parameter left ``null`` stays as ``{name}`` in the commands of the steps that use
it: such steps can be planned (``--dry-run``) but not run (:func:`require_params`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_manifests.config import ConfigError, config_files
from data_manifests.errors import UserError

RECIPES_DIR = Path(__file__).parent / "recipes"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_\-]+)\}")


class RecipeError(UserError):
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
    unset: tuple[str, ...] = ()  # null params its commands use ({name} left in them)
    slots: int = 1  # of the runner's `jobs` slots it occupies while running; not in the key

    def folder(self, root: Path) -> Path:
        return root / f"{self.id}-{self.key[:10]}"


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path
    steps: tuple[Step, ...]  # in dependency order
    tables: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    params: Mapping[str, str | None] = field(default_factory=dict)  # resolved values

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


def load_recipe(name_or_path: str | Path, root: Path,
                params: Mapping[str, str] | None = None) -> Recipe:
    """Parse, expand seeds, order by dependencies and key every step.

    ``params`` override the recipe's ``params`` defaults (unknown names are errors).
    """
    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise RecipeError(f"{path}: a recipe is a mapping with a 'steps' list")
    unknown = set(raw) - {"name", "description", "steps", "tables", "params"}
    if unknown:
        raise RecipeError(f"{path}: unknown top-level key(s) {sorted(unknown)}")
    name = str(raw.get("name", path.stem))
    specs = [_check_step(path, i, s) for i, s in enumerate(raw["steps"])]
    values = _resolve_params(path, name, raw.get("params"), params or {},
                             {s["id"] for s in specs})
    expanded = _expand_seeds(_expand_matrix(specs))
    ordered = _topological(path, expanded)
    steps: dict[str, Step] = {}
    for spec in ordered:
        steps[spec["id"]] = _resolve(path, spec, steps, root, values)
    return Recipe(name=name, description=str(raw.get("description", "")), path=path,
                  steps=tuple(steps.values()), tables=tuple(raw.get("tables") or ()),
                  params=values)


def parse_params(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["videos=/data/x", ...]`` (the ``--param`` options) -> ``{"videos": "/data/x"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RecipeError(f"--param {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def require_params(recipe: Recipe) -> None:
    """Raise when a step to run uses a parameter that has no value, or a path parameter names
    nothing that exists."""
    absent = [f"--param {name}={value}" for name, value in recipe.params.items()
              if value is not None and is_path_param(name) and not os.path.exists(value)]
    if absent:
        raise RecipeError(f"recipe {recipe.name} ({recipe.path}): no such file or folder: "
                          + "; ".join(absent))
    missing: dict[str, list[str]] = {}
    for step in recipe.steps:
        for name in step.unset:
            missing.setdefault(name, []).append(step.id)
    if missing:
        lines = [f"--param {name}=... (used by {', '.join(ids[:3])}"
                 f"{f' and {len(ids) - 3} more' if len(ids) > 3 else ''})"
                 for name, ids in sorted(missing.items())]
        raise RecipeError(f"recipe {recipe.name} ({recipe.path}) needs a value for: "
                          + "; ".join(lines) + " (--dry-run plans without them)")


_BUILTIN_PLACEHOLDERS = {"out", "seed", "recipe_dir", "root", "extract_configs"}


def is_path_param(name: str) -> bool:
    """Parameters that name files or folders (made absolute before substitution)."""
    return name in ("annotations", "videos") or name.endswith(("_dir", "_root", "_path"))


def _resolve_params(path: Path, name: str, declared: Any, given: Mapping[str, str],
                    step_ids: set[str]) -> dict[str, str | None]:
    if declared is None:
        declared = {}
    if not isinstance(declared, dict):
        raise RecipeError(f"{path}: 'params' must map names to default values, got {declared!r}")
    clashes = sorted(set(declared) & (step_ids | _BUILTIN_PLACEHOLDERS))
    if clashes:
        raise RecipeError(f"{path}: param name(s) {clashes} clash with a step id or a built-in "
                          "placeholder")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RecipeError(f"recipe {name} ({path}): unknown param(s) {unknown}; known: "
                          f"{', '.join(sorted(declared)) or '(none)'}")
    values: dict[str, str | None] = {}
    for key, default in declared.items():
        value = given.get(key, default)
        if value is None or value == "":
            values[key] = None
        elif is_path_param(key):
            values[key] = os.path.abspath(os.path.expanduser(str(value)))
        else:
            values[key] = str(value)
    return values


_STEP_KEYS = {"id", "needs", "seeds", "matrix", "command", "commands", "resume", "results",
              "allow_exit", "slots"}


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
    slots = spec.get("slots", 1)
    # bool is an int subclass: `slots: yes` is a mistake, not 1.
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise RecipeError(f"{where} ({spec['id']}): 'slots' must be an integer >= 1, "
                          f"got {slots!r}")
    seeds = spec.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise RecipeError(f"{where} ({spec['id']}): 'seeds' must be a list of integers, "
                          f"got {seeds!r}")
    matrix = spec.get("matrix")
    if matrix is not None:
        if not isinstance(matrix, dict) or not matrix or not all(
                isinstance(v, list) and v and all(isinstance(x, (str, int)) for x in v)
                for v in matrix.values()):
            raise RecipeError(f"{where} ({spec['id']}): 'matrix' maps names to non-empty lists "
                              f"of values, got {matrix!r}")
        missing = [name for name in matrix if f"{{{name}}}" not in str(spec["id"])]
        if missing:
            raise RecipeError(f"{where} ({spec['id']}): the id must name every matrix "
                              f"variable, so each combination gets its own step: add "
                              f"{', '.join('{' + m + '}' for m in missing)}")
    return dict(spec, commands=commands, slots=slots)


def _expand_matrix(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One step per combination of each step's ``matrix`` values (first name varies slowest)."""
    out = []
    for spec in specs:
        matrix = spec.pop("matrix", None)
        if not matrix:
            out.append(spec)
            continue
        names = list(matrix)
        for values in itertools.product(*(matrix[n] for n in names)):
            pairs = {f"{{{n}}}": str(v) for n, v in zip(names, values, strict=True)}

            def fill(value: Any, pairs: dict[str, str] = pairs) -> Any:
                if isinstance(value, str):
                    for placeholder, text in pairs.items():
                        value = value.replace(placeholder, text)
                    return value
                if isinstance(value, list):
                    return [fill(v) for v in value]
                return value

            out.append({key: fill(value) for key, value in spec.items()})
    return out


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


def _resolve(path: Path, spec: dict[str, Any], done: dict[str, Step], root: Path,
             params: Mapping[str, str | None]) -> Step:
    values = {"recipe_dir": str(path.parent.resolve()), "root": str(root.resolve()),
              "extract_configs": _extract_configs_dir()}
    unset = {name for name, value in params.items() if value is None}
    values.update({name: value for name, value in params.items() if value is not None})
    used_unset: list[str] = []
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
            if name in unset:
                if name not in used_unset:
                    used_unset.append(name)
                return "{" + name + "}"  # no value: the step can be planned, not run
            if name not in values:
                known = ", ".join(sorted([*values, *unset]))
                raise RecipeError(f"{path}: step {spec['id']!r}: unknown placeholder {{{name}}} "
                                  f"(known: out, {known})")
            return values[name]
        return _PLACEHOLDER.sub(sub, str(arg))

    commands = tuple(tuple(fill(a) for a in command) for command in spec["commands"])
    keyed = {"commands": commands, "needs": [done[n].key for n in spec["needs"]],
             "inputs": _input_digests(commands, root)}
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
                seed=spec["seed"], base_id=spec["base_id"], unset=tuple(used_unset),
                slots=spec["slots"])


def _input_digests(commands: tuple[tuple[str, ...], ...], root: Path) -> dict[str, str]:
    """sha256 of every existing file an argument names outside the output root (a config YAML,
    with the ``_base_`` files it inherits): editing any of them re-keys the step. Files under the root belong to needed steps, whose keys
    already stand for them (and may not exist yet when the recipe is loaded)."""
    out_root = root.resolve()
    digests = {}
    for arg in (a for command in commands for a in command):
        path = Path(arg)
        if not path.is_absolute() or not path.is_file() or path.resolve().is_relative_to(out_root):
            continue
        try:
            files = config_files(path) if path.suffix in (".yaml", ".yml") else [path]
        except ConfigError:  # not a config: the command itself will say what is wrong
            files = [path]
        digests[arg] = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    return digests
