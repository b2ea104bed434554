"""Two trainers never share a run folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from data_manifests.run_folder import RunFolder, RunInUseError


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
