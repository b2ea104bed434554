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

``jobs=N`` gives the runner N slots. A step occupies min(K, N) of them while it runs, where K
is its recipe key ``slots`` (default 1), and gets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` =
max(1, cores * min(K, N) // N) (unless already set): the running steps share the cores
instead of each taking all of them, and a step that in practice runs alone (one every later
step needs, such as a pretraining step) can be given ``slots: N`` to use every core. Ready
steps (every step they need is done, cached or settled) start in recipe order, each from its
own thread, as long as they fit in the free slots. The first ready step that does not fit
waits, and no step after it in recipe order starts meanwhile (only steps before it, which
become ready later, may): the running steps drain and it gets its slots, so a wide step
cannot be starved by a stream of narrow ones. Steps that need no process (cached, blocked)
settle at once whatever the slots. ``jobs=1`` runs the steps in the calling thread, one after
the other, with the environment untouched (``slots`` then changes nothing). On Ctrl-C the
running step processes are terminated and keep their ``.step-started.json``: the next run
resumes them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
    status: str  # "done" (ran now), "cached", "failed", "blocked", "planned", "interrupted"
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


def step_environment(jobs: int, environ: Mapping[str, str] | None = None,
                     cores: int | None = None, *, slots: int = 1) -> dict[str, str] | None:
    """The environment of a step process occupying ``slots`` of the ``jobs`` slots: ``None``
    (inherit) for one job; for N jobs a copy with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` =
    max(1, cores * min(slots, N) // N) where the user set none (torch sizes its intra-op pool
    from ``OMP_NUM_THREADS``)."""
    if jobs == 1:
        return None
    environ = os.environ if environ is None else environ
    cores = cores or available_cores()
    env = dict(environ)
    threads = max(1, cores * width(slots, jobs) // jobs)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, str(threads))
    return env


def width(slots: int, jobs: int) -> int:
    """How many of the ``jobs`` slots a step asking for ``slots`` occupies."""
    return min(slots, jobs)


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_recipe(recipe: Recipe, root: Path, *, dry_run: bool = False,
               echo: Callable[[str], Any] = print, jobs: int = 1) -> RunReport:
    """Run (or, with ``dry_run``, only plan) every step; returns what happened to each, in
    recipe order.

    The running steps occupy at most ``jobs`` slots (a step takes min(its ``slots``, jobs));
    a step starts once every step it needs is settled and it fits in the free slots, and ready
    steps start in recipe order (a waiting one holds back those after it; see the module
    docstring). Ctrl-C terminates the running steps (they resume on the next run) and
    re-raises ``KeyboardInterrupt``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    root.mkdir(parents=True, exist_ok=True)
    processes = _Processes()
    outcomes: dict[str, StepOutcome] = {}
    pending = list(recipe.steps)
    running: dict[Future, Step] = {}
    active: list[str] = []  # ids of the steps started and not yet settled
    number = {step.id: n for n, step in enumerate(recipe.steps, start=1)}
    total = len(recipe.steps)

    def settle(step: Step, outcome: StepOutcome) -> None:
        # Only the calling thread echoes: lines of parallel steps cannot interleave.
        outcomes[step.id] = outcome
        if step.id in active:
            active.remove(step.id)
        timing = f" ({outcome.seconds:.0f} s)" if outcome.status == "done" else ""
        detail = f": {outcome.detail}" if outcome.detail and outcome.status != "done" else ""
        echo(f"[{number[step.id]}/{total}] {step.id}: {outcome.status}{timing}{detail}")

    pool = ThreadPoolExecutor(max_workers=jobs) if jobs > 1 else _InThisThread()
    try:
        while pending or running:
            for future in [f for f in running if f.done()]:
                settle(running.pop(future), future.result())
            free = jobs - sum(width(s.slots, jobs) for s in running.values())
            chosen = _next_step(pending, outcomes, free=free, jobs=jobs, dry_run=dry_run,
                                root=root)
            if chosen is None:
                # In dependency order, some pending step is ready once nothing runs, and it
                # fits then: no step occupies more than `jobs` slots.
                assert running or not pending, f"no step ready among {pending}"
                wait(running, return_when=FIRST_COMPLETED)
                continue
            step, outcome = chosen
            pending.remove(step)
            if outcome is not None:
                settle(step, outcome)
                continue
            wide = width(step.slots, jobs)
            echo(f"[{number[step.id]}/{total}] {step.id}: running"
                 f"{f' on {wide} slots' if wide > 1 else ''} ...")
            active.append(step.id)
            env = step_environment(jobs, slots=step.slots)
            running[pool.submit(_run_step, step, root, env, processes)] = step
    except BaseException:
        # Ctrl-C (or a bug here): end the running steps; their .step-started.json stays.
        processes.stop()
        if active:
            echo(f"stopped {', '.join(active)}; re-running resumes "
                 f"{'it' if len(active) == 1 else 'them'}")
        raise
    finally:
        pool.shutdown(wait=True)
    return RunReport([outcomes[step.id] for step in recipe.steps])


def _next_step(pending: list[Step], outcomes: dict[str, StepOutcome], *, free: int, jobs: int,
               dry_run: bool, root: Path) -> tuple[Step, StepOutcome | None] | None:
    """The first pending step (recipe order) whose needs are settled and that either settles
    without a process (returned with its outcome) or can start now in the ``free`` slots
    (outcome None). Once a ready step does not fit, no later step may start: it waits first."""
    waiting = False
    for step in pending:
        if any(need not in outcomes for need in step.needs):
            continue
        outcome = _settle_without_running(step, outcomes, dry_run=dry_run, root=root)
        if outcome is not None:
            return step, outcome
        if not waiting and width(step.slots, jobs) <= free:
            return step, None
        waiting = True
    return None


def _settle_without_running(step: Step, outcomes: dict[str, StepOutcome], *, dry_run: bool,
                            root: Path) -> StepOutcome | None:
    """The step's outcome when it needs no process; ``None`` when it has to run."""
    bad_needs = [n for n in step.needs if outcomes[n].status in ("failed", "blocked")]
    if is_done(step, root):
        return StepOutcome(step, "cached")
    if bad_needs:
        return StepOutcome(step, "blocked", detail=f"needs {', '.join(bad_needs)}")
    if step.unset and not dry_run:
        return StepOutcome(step, "failed", detail="no value for "
                           + ", ".join(f"--param {name}=..." for name in step.unset))
    if dry_run:
        resuming = (step.folder(root) / STARTED).exists()
        argvs = step_argvs(step, root, resuming=resuming)
        return StepOutcome(step, "planned", detail=" && ".join(shown(a) for a in argvs))
    return None


class _InThisThread:
    """The executor for ``jobs=1``: runs each step in the calling thread, to its end."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


# Set for every step process: the runner's pid (see end_with_runner).
RUNNER_PID_VARIABLE = "WEAKFEAT_RUNNER_PID"


def end_with_runner() -> None:
    """Called first by every ``weakfeat`` command: in a step process of a runner, ask the
    kernel (Linux prctl PR_SET_PDEATHSIG) to send this process SIGTERM when the runner dies, even
    by SIGKILL, which runs no Python; so no step trains on as an orphan, and a re-run does not
    meet its run folder's lock. A runner already gone before the request ends the step now."""
    runner_pid = os.environ.get(RUNNER_PID_VARIABLE)
    if not runner_pid or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(runner_pid):
        sys.exit(f"the pipeline runner (pid {runner_pid}) has ended; this step stops with it")


class _Processes:
    """The step processes now running (from any thread), so that Ctrl-C can end them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self._stopping = False

    def run(self, argv: list[str], *, log_file: Any, env: dict[str, str] | None) -> int | None:
        """Run ``argv`` to its end, output to ``log_file``; ``None`` once :meth:`stop` was
        called (the exit status of a terminated process says nothing about the step)."""
        with self._lock:  # no process may start after stop() has looked at the live ones
            if self._stopping:
                return None
            env = {**(os.environ if env is None else env), RUNNER_PID_VARIABLE: str(os.getpid())}
            process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
            self._live.add(process)
        returncode = process.wait()  # an interrupt here leaves it in _live, for stop()
        with self._lock:
            self._live.discard(process)
            return None if self._stopping else returncode

    def stop(self, grace_s: float = 10.0) -> int:
        """Terminate every running step process (kill after ``grace_s``); returns how many."""
        with self._lock:
            self._stopping = True
            live = list(self._live)
        for process in live:
            process.terminate()
        for process in live:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return len(live)


def _run_step(step: Step, root: Path, env: dict[str, str] | None,
              processes: _Processes) -> StepOutcome:
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
            returncode = processes.run(argv, log_file=log_file, env=env)
            if returncode is None:  # Ctrl-C: no done marker, .step-started.json stays
                return StepOutcome(step, "interrupted", time.monotonic() - start)
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
