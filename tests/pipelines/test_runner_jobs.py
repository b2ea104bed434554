"""`run_recipe(..., jobs=N)`: independent steps overlap, dependants wait, failures stay local,
the report equals the one-job report, step processes get a thread budget, Ctrl-C resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipelines import runner
from pipelines.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]

# Stands in for `weakfeat ARGS`: "stamp OUT SECONDS" sleeps and writes its wall-clock interval
# and thread variables to OUT/stamp.json; "fail" exits 3; "hang OUT" writes its pid to OUT/pid
# and sleeps for a minute, or, given --resume, writes OUT/resumed and exits.
FAKE = textwrap.dedent("""
    import json, os, pathlib, sys, time
    cmd, *rest = sys.argv[1:]
    if cmd == "fail":
        sys.exit(3)
    out = pathlib.Path(rest[0]); out.mkdir(parents=True, exist_ok=True)
    if cmd == "stamp":
        start = time.time()
        time.sleep(float(rest[1]))
        (out / "stamp.json").write_text(json.dumps({
            "start": start, "end": time.time(), "omp": os.environ.get("OMP_NUM_THREADS"),
            "mkl": os.environ.get("MKL_NUM_THREADS")}))
    if cmd == "hang":
        if "--resume" in rest:
            (out / "resumed").write_text("")
            sys.exit(0)
        (out / "pid").write_text(str(os.getpid()))
        time.sleep(60)
""")


def fake_command(args):
    return [sys.executable, "-c", FAKE, *args]


@pytest.fixture
def fake_weakfeat(monkeypatch):
    monkeypatch.setattr(runner, "weakfeat_command", fake_command)
    # tests/conftest.py sets OMP_NUM_THREADS for torch; here the user "set" neither.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner, "available_cores", lambda: 8)


def load(tmp_path: Path, text: str, root: Path):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return load_recipe(path, root)


def stamp(recipe, root: Path, step_id: str) -> dict:
    return json.loads((recipe.step(step_id).folder(root) / "stamp.json").read_text())


def test_independent_steps_overlap_and_a_dependant_waits_for_its_needs(tmp_path, fake_weakfeat):
    root = tmp_path / "out"
    recipe = load(tmp_path, """
        steps:
          - id: a
            command: [stamp, "{out}", "1.0"]
          - id: b
            command: [stamp, "{out}", "1.0"]
          - id: c
            needs: [a, b]
            command: [stamp, "{out}", "0"]
    """, root)
    lines: list[str] = []
    report = runner.run_recipe(recipe, root, echo=lines.append, jobs=2)
    assert [(o.step.id, o.status) for o in report.outcomes] == [
        ("a", "done"), ("b", "done"), ("c", "done")]
    a, b, c = (stamp(recipe, root, s) for s in "abc")
    assert max(a["start"], b["start"]) < min(a["end"], b["end"])  # the intervals intersect
    assert c["start"] >= max(a["end"], b["end"])
    assert {s["omp"] for s in (a, b, c)} == {"4"} and {s["mkl"] for s in (a, b, c)} == {"4"}
    # Every step is announced when it starts and when it ends, one whole line each.
    assert lines[:2] == ["[1/3] a: running ...", "[2/3] b: running ..."]
    assert lines.index("[3/3] c: running ...") > max(
        i for i, line in enumerate(lines) if line.startswith(("[1/3] a: done", "[2/3] b: done")))
    assert len(lines) == 6


def test_a_failure_blocks_only_its_dependants_and_the_report_equals_one_job(
        tmp_path, fake_weakfeat):
    text = """
        steps:
          - id: broken
            command: [fail]
          - id: after-broken
            needs: [broken]
            command: [stamp, "{out}", "0"]
          - id: slow
            command: [stamp, "{out}", "0.5"]
          - id: after-slow
            needs: [slow]
            command: [stamp, "{out}", "0"]
    """
    reports = {}
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        recipe = load(tmp_path, text, root)
        reports[jobs] = runner.run_recipe(recipe, root, echo=lambda *_: None, jobs=jobs)
        omp = stamp(recipe, root, "after-slow")["omp"]
        assert omp == (None if jobs == 1 else "4")  # one job: the environment is untouched
    status = [(o.step.id, o.status) for o in reports[2].outcomes]
    assert status == [("broken", "failed"), ("after-broken", "blocked"), ("slow", "done"),
                      ("after-slow", "done")]
    assert status == [(o.step.id, o.status) for o in reports[1].outcomes]
    assert not reports[2].ok
    one = reports[1].summary().replace(str(tmp_path / "jobs1"), "ROOT")
    two = reports[2].summary().replace(str(tmp_path / "jobs2"), "ROOT")
    assert one == two and "exit 3" in two and "blocked: after-broken: needs broken" in two


def test_thread_variables_the_user_set_are_kept():
    env = runner.step_environment(3, {"OMP_NUM_THREADS": "2", "PATH": "/bin"}, cores=16)
    assert env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "5", "PATH": "/bin"}
    assert runner.step_environment(4, {}, cores=2)["MKL_NUM_THREADS"] == "1"
    assert runner.step_environment(1, {}, cores=16) is None


def test_cli_jobs_option(tmp_path, fake_weakfeat):
    from pipelines.main import cli
    path = tmp_path / "r.yaml"
    path.write_text("steps:\n  - id: a\n    command: [stamp, '{out}', '0']\n"
                    "  - id: b\n    command: [stamp, '{out}', '0']\n")
    root = tmp_path / "out"
    result = CliRunner().invoke(cli, ["pipelines", "run", str(path), "--out", str(root),
                                      "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "2 done" in result.output
    assert stamp(load_recipe(path, root), root, "a")["omp"] == "4"
    result = CliRunner().invoke(cli, ["pipelines", "run", str(path), "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs" in result.output


# Runs the recipe with two jobs in its own process, so that SIGINT reaches only the runner
# (a terminal's Ctrl-C also reaches the steps; the runner must not rely on that).
CHILD = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from pipelines import runner
    from pipelines.recipe import load_recipe
    fake, recipe_path, root = sys.argv[1:]
    runner.weakfeat_command = lambda args: [sys.executable, "-c", fake, *args]
    try:
        runner.run_recipe(load_recipe(recipe_path, Path(root)), Path(root), jobs=2)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def test_ctrl_c_terminates_running_steps_and_the_next_run_resumes_them(tmp_path, fake_weakfeat):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""
        steps:
          - id: x
            command: [hang, "{out}"]
            resume: [--resume]
          - id: y
            command: [hang, "{out}"]
            resume: [--resume]
          - id: after
            needs: [x]
            command: [stamp, "{out}", "0"]
    """))
    root = tmp_path / "out"
    recipe = load_recipe(path, root)
    pid_files = [recipe.step(s).folder(root) / "pid" for s in ("x", "y")]
    child = subprocess.Popen([sys.executable, "-c", CHILD, FAKE, str(path), str(root)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        deadline = time.monotonic() + 20
        while not all(p.exists() and p.read_text() for p in pid_files):
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                pytest.fail(f"x and y did not both start:\n{child.communicate()[0]}")
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pid_files]
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=20)
        assert child.returncode == 130, output
        assert "stopped x, y; re-running resumes them" in output
        for pid in pids:  # terminated and reaped by the runner, not left behind
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:  # whatever failed, leave no process behind
        if child.poll() is None:
            child.kill()
        for pid in [int(p.read_text()) for p in pid_files if p.exists() and p.read_text()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for step_id in ("x", "y"):
        folder = recipe.step(step_id).folder(root)
        assert (folder / runner.STARTED).exists() and not runner.is_done(recipe.step(step_id),
                                                                          root)
    assert not recipe.step("after").folder(root).exists()
    report = runner.run_recipe(recipe, root, echo=lambda *_: None, jobs=2)
    assert [o.status for o in report.outcomes] == ["done", "done", "done"]
    assert all((recipe.step(s).folder(root) / "resumed").exists() for s in ("x", "y"))


def test_a_wide_step_waits_for_its_slots_holds_back_later_steps_and_gets_more_threads(
        tmp_path, fake_weakfeat):
    root = tmp_path / "out"
    recipe = load(tmp_path, """
        steps:
          - id: narrow
            command: [stamp, "{out}", "0.6"]
          - id: wide
            slots: 3                  # more than --jobs: takes all of them
            command: [stamp, "{out}", "0.2"]
          - id: later
            command: [stamp, "{out}", "0"]
    """, root)
    lines: list[str] = []
    report = runner.run_recipe(recipe, root, echo=lines.append, jobs=2)
    assert [o.status for o in report.outcomes] == ["done", "done", "done"]
    narrow, wide, later = (stamp(recipe, root, s) for s in ("narrow", "wide", "later"))
    # `wide` is ready at once but one slot is taken: it waits, and `later` (after it in recipe
    # order) may not take the free slot meanwhile, nor run beside it.
    assert wide["start"] >= narrow["end"]
    assert later["start"] >= wide["end"]
    assert (wide["omp"], wide["mkl"]) == ("8", "8")  # 8 cores * 2 of 2 slots
    assert narrow["omp"] == later["omp"] == "4"
    assert "[2/3] wide: running on 2 slots ..." in lines


def test_slots_change_nothing_with_one_job(tmp_path, fake_weakfeat):
    root = tmp_path / "out"
    recipe = load(tmp_path, """
        steps:
          - id: wide
            slots: 2
            command: [stamp, "{out}", "0"]
    """, root)
    lines: list[str] = []
    assert runner.run_recipe(recipe, root, echo=lines.append, jobs=1).ok
    assert stamp(recipe, root, "wide")["omp"] is None  # environment inherited, as before
    assert lines[0] == "[1/1] wide: running ..."


def test_thread_budget_grows_with_slots():
    assert runner.step_environment(4, {}, cores=8, slots=2)["OMP_NUM_THREADS"] == "4"
    assert runner.step_environment(4, {}, cores=8, slots=9)["OMP_NUM_THREADS"] == "8"
    assert runner.step_environment(3, {}, cores=16, slots=2)["MKL_NUM_THREADS"] == "10"
    assert runner.step_environment(4, {}, cores=2, slots=1)["OMP_NUM_THREADS"] == "1"
    assert runner.step_environment(2, {"OMP_NUM_THREADS": "1"}, cores=8,
                                   slots=2)["OMP_NUM_THREADS"] == "1"  # the user's wins
    assert runner.step_environment(1, {}, cores=16, slots=4) is None


def test_slots_are_not_part_of_the_step_key(tmp_path):
    text = """
        steps:
          - id: pretrain
            {slots}
            seeds: [0, 1]
            command: [stamp, "{{out}}", "0"]
          - id: after
            needs: [pretrain]
            seeds: [0, 1]
            command: [stamp, "{{out}}", "{{pretrain}}"]
    """
    plain = load(tmp_path, text.format(slots=""), tmp_path / "out")
    wide = load(tmp_path, text.format(slots="slots: 2"), tmp_path / "out")
    assert [s.key for s in plain.steps] == [s.key for s in wide.steps]
    assert [s.slots for s in wide.steps] == [2, 2, 1, 1]  # seeded copies keep it
    assert [s.slots for s in plain.steps] == [1, 1, 1, 1]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "true", "[2]"])
def test_bad_slots_name_the_file_the_step_and_the_value(tmp_path, value):
    from pipelines.recipe import RecipeError
    with pytest.raises(RecipeError) as error:
        load(tmp_path, f"""
            steps:
              - id: pretrain
                slots: {value}
                command: [stamp, "{{out}}", "0"]
        """, tmp_path / "out")
    message = str(error.value)
    assert str(tmp_path / "r.yaml") in message and "(pretrain)" in message
    assert "'slots' must be an integer >= 1" in message
    assert repr(yaml.safe_load(value)) in message
