"""Run a recipe's steps in dependency order, skipping what is done and resuming what is not.

Each step runs as its own ``weakfeat`` process (a crash or memory blow-up in one step cannot
take the runner down), writing only inside its folder ``<root>/<id>-<key>``:

* ``.step-started.json``: written before the command runs (an interrupted step is resumed
  with the step's ``resume`` arguments the next time);
* ``.step.log``: the command's stdout and stderr;
* ``.step-done.json``: written last, only when the command succeeded; its presence is what
  "done" means.

A failed step stops its dependants (reported as blocked) and leaves every finished step in
place; the run ends with a summary and a non-zero exit status.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_manifests.run_folder import atomic_write_text
from pipelines.recipe import Recipe, Step

log = logging.getLogger(__name__)
DONE, STARTED, LOG = ".step-done.json", ".step-started.json", ".step.log"


@dataclass
class StepOutcome:
    step: Step
    status: str  # "done" (ran now), "cached", "failed", "blocked", "planned"
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunReport:
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status in ("done", "cached", "planned") for o in self.outcomes)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        lines = [", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
        for o in self.outcomes:
            if o.status in ("failed", "blocked"):
                lines.append(f"  {o.status}: {o.step.id}: {o.detail}")
        return "\n".join(lines)


def weakfeat_command(args: tuple[str, ...] | list[str]) -> list[str]:
    """The argv that runs ``weakfeat ARGS`` with this interpreter."""
    return [sys.executable, "-m", "pipelines.main", *args]


def step_argvs(step: Step, root: Path, *, resuming: bool) -> list[list[str]]:
    """One argv per command; ``resume`` arguments go to the first (the long-running one)."""
    folder = str(step.folder(root).resolve())
    argvs = []
    for index, command in enumerate(step.commands):
        args = [a.replace("{out}", folder) for a in command]
        if resuming and index == 0:
            args += list(step.resume)
        argvs.append(weakfeat_command(args))
    return argvs


def shown(argv: list[str]) -> str:
    return " ".join(["weakfeat", *argv[3:]])


def is_done(step: Step, root: Path) -> bool:
    return (step.folder(root) / DONE).exists()


def run_recipe(recipe: Recipe, root: Path, *, dry_run: bool = False,
               echo=print) -> RunReport:
    """Run (or, with ``dry_run``, only plan) every step; returns what happened to each."""
    root.mkdir(parents=True, exist_ok=True)
    report = RunReport()
    status: dict[str, str] = {}
    total = len(recipe.steps)
    for number, step in enumerate(recipe.steps, start=1):
        prefix = f"[{number}/{total}] {step.id}"
        bad_needs = [n for n in step.needs if status[n] in ("failed", "blocked")]
        if is_done(step, root):
            outcome = StepOutcome(step, "cached")
        elif bad_needs:
            outcome = StepOutcome(step, "blocked", detail=f"needs {', '.join(bad_needs)}")
        elif dry_run:
            resuming = (step.folder(root) / STARTED).exists()
            argvs = step_argvs(step, root, resuming=resuming)
            outcome = StepOutcome(step, "planned", detail=" && ".join(shown(a) for a in argvs))
        else:
            echo(f"{prefix}: running ...")
            outcome = _run_step(step, root)
        status[step.id] = outcome.status
        report.outcomes.append(outcome)
        timing = f" ({outcome.seconds:.0f} s)" if outcome.status == "done" else ""
        echo(f"{prefix}: {outcome.status}{timing}" + (f": {outcome.detail}" if outcome.detail
                                                       and outcome.status != "done" else ""))
    return report


def _run_step(step: Step, root: Path) -> StepOutcome:
    folder = step.folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    resuming = (folder / STARTED).exists()
    argvs = step_argvs(step, root, resuming=resuming)
    atomic_write_text(folder / STARTED, json.dumps({"argvs": argvs, "key": step.key}, indent=1))
    start = time.monotonic()
    returncodes = []
    with (folder / LOG).open("a") as log_file:
        for argv in argvs:
            log_file.write(f"$ {shown(argv)}\n")
            log_file.flush()
            returncode = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                        check=False).returncode
            returncodes.append(returncode)
            if returncode != 0 and returncode not in step.allow_exit:
                tail = _tail(folder / LOG, 15)
                return StepOutcome(step, "failed", time.monotonic() - start,
                                   f"exit {returncode} from `{shown(argv)}`; log {folder / LOG}; "
                                   f"last lines:\n{tail}")
    seconds = time.monotonic() - start
    atomic_write_text(folder / DONE, json.dumps(
        {"argvs": argvs, "key": step.key, "returncodes": returncodes, "seconds": seconds},
        indent=1))
    return StepOutcome(step, "done", seconds)


def gather_results(recipe: Recipe, root: Path) -> dict[str, Any]:
    """Every done step's results file, with the command that produced it."""
    out: dict[str, Any] = {}
    for step in recipe.steps:
        if step.results is None or not is_done(step, root):
            continue
        path = step.folder(root) / step.results
        if not path.exists():
            log.warning("step %s is done but has no %s", step.id, path)
            continue
        done = json.loads((step.folder(root) / DONE).read_text())
        out[step.id] = {"step": step.base_id, "seed": step.seed, "folder": str(step.folder(root)),
                        "command": " && ".join(shown(a) for a in done["argvs"]),
                        "results": json.loads(path.read_text())}
    return out


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])
