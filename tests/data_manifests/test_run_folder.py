"""Run folders: one live trainer per folder (lock), atomic writes, no temporaries left."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from data_manifests.run_folder import RunFolder, RunInUseError, atomic_target, atomic_write_text


def test_a_live_trainers_lock_is_refused_and_a_dead_ones_taken_over(tmp_path):
    run = RunFolder(tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.path.mkdir()
        (run.path / ".lock").write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        with pytest.raises(RunInUseError, match=f"pid {sleeper.pid}"):
            run.create({"a": 1}, resume=False)
        assert not run.config_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    run.create({"a": 1}, resume=False)  # the holder is gone: taken over
    assert (run.path / ".lock").read_text().split() == [socket.gethostname(), str(os.getpid())]
    run.create({"a": 1}, resume=True)  # this process holds it


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "last.pt"
    target.write_text("old")
    with pytest.raises(OSError), atomic_target(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_a_resumed_run_removes_the_temporaries_of_a_killed_trainer(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create({"train": {"epochs": 1}}, resume=False)
    (run.checkpoints / ".last.pt.tmp-999999").write_bytes(b"half a checkpoint")
    (run.path / ".results.json.tmp-999999").write_text("{")
    (run.path / ".lock").unlink()
    run.create({"train": {"epochs": 1}}, resume=True)
    assert not list(run.path.rglob("*.tmp-*"))


def test_results_and_metrics_are_strict_json_with_undefined_values_as_null(tmp_path):
    import json

    import numpy as np

    run = RunFolder(tmp_path / "run")
    run.create({"a": 1}, resume=False)
    run.write_results({"mAP": float("nan"), "ap": [0.5, np.float32("nan"), float("inf")]})
    run.log({"loss": np.float64("nan"), "step": 1})
    strict = {"parse_constant": lambda name: pytest.fail(f"bare {name} in the file")}
    assert json.loads((run.path / "results.json").read_text(), **strict) == {
        "mAP": None, "ap": [0.5, None, None]}
    assert json.loads(run.metrics_path.read_text(), **strict) == {"loss": None, "step": 1}
