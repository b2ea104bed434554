"""Faults while the work runs: a process killed (SIGKILL) mid-run, a file-size limit (what a
full disk looks like to a process: ``ulimit -f``) while writing. What must hold (README, "What
survives a fault"): one line and exit 1, no traceback or segfault; everything finished before
the fault is kept and reads back intact; no temporary file is left; the re-run (``--resume``
where the command has it) ends exactly where an uninterrupted run would.

(Kills of an export at any moment are in tests/extract/test_export.py, Ctrl-C of a pipeline in
tests/pipelines/test_runner_jobs.py, damaged stores in tests/extract/test_store_integrity.py.)
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "downstream"))
sys.path.insert(0, str(Path(__file__).parent / "extract"))
from test_training_loop import write_tiny_dataset
from tiny_data import write_tiny

from extract.store import open_store

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "extract" / "training" / "configs"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux limits")


def weakfeat(*args: str, fsize: int | None = None, wait: bool = True):
    """``weakfeat ARGS`` in a fresh process, optionally under a file-size limit (bytes)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    argv = [sys.executable, "-m", "pipelines.main", *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not wait:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False,
                          timeout=300, preexec_fn=limit if fsize else None)


def one_line_error(done: subprocess.CompletedProcess, *names: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


def no_temporaries(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if ".tmp-" in p.name or
            (p.parent.name == ".staging")]
    assert not left, left


def kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended before the kill point:\n{process.communicate()[0]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


# ---- stage 2 -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tal(tmp_path_factory):
    _, manifest, store = write_tiny(tmp_path_factory.mktemp("faults_tal"))
    return manifest, store


def tal_train(manifest, store, out, epochs, *more):
    return ("downstream", "train", "tal", "--method", "mil", "--features", store,
            "--manifest", manifest, "--set", f"train.epochs={epochs}", "--out", out,
            "--no-progress", *more)


@pytest.mark.slow
def test_stage2_killed_mid_run_resumes_to_the_uninterrupted_weights(tal, tmp_path):
    manifest, store = tal
    assert weakfeat(*tal_train(manifest, store, tmp_path / "clean", 40)).returncode == 0
    run = tmp_path / "killed"
    process = weakfeat(*tal_train(manifest, store, run, 40), wait=False)
    kill_when(process, lambda: (run / "checkpoints" / "last.pt").exists()
              and len((run / "metrics.jsonl").read_text().splitlines()) >= 3)
    done = weakfeat(*tal_train(manifest, store, run, 40), "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_weights(run, tmp_path / "clean")
    no_temporaries(run)


@pytest.mark.slow
def test_stage2_checkpoint_past_a_file_size_limit_keeps_the_last_one(tal, tmp_path):
    manifest, store = tal
    run = tmp_path / "run"
    assert weakfeat(*tal_train(manifest, store, run, 2)).returncode == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    limit = len(before) // 2  # config and metrics fit; no checkpoint does
    done = weakfeat(*tal_train(manifest, store, run, 4, "--resume"), fsize=limit)
    one_line_error(done, "File too large", "finished work is kept")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    no_temporaries(run)
    assert weakfeat(*tal_train(manifest, store, run, 4, "--resume")).returncode == 0
    assert weakfeat(*tal_train(manifest, store, tmp_path / "clean", 4)).returncode == 0
    assert_same_weights(run, tmp_path / "clean")


# ---- stage 1 -----------------------------------------------------------------------------------

def stage1(manifest, out, *more):
    return ("extract", "train", "--config", CONFIGS / "c3d-tiny_synthetic-demo.yaml",
            "--set", f"data.manifest={manifest}", "--set", "data.num_workers=0",
            "--set", "train.batch_size=2", "--set", "train.epochs=6",
            "--set", "train.checkpoint_every=1", "--set", "eval.split=\"\"", "--out", out, *more)


@pytest.mark.slow
def test_stage1_killed_mid_run_resumes_to_the_uninterrupted_weights(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", num_videos=6)
    assert weakfeat(*stage1(manifest, tmp_path / "clean")).returncode == 0
    run = tmp_path / "killed"
    process = weakfeat(*stage1(manifest, run), wait=False)
    kill_when(process, lambda: (run / "metrics.jsonl").exists()
              and len((run / "metrics.jsonl").read_text().splitlines()) >= 5)
    done = weakfeat(*stage1(manifest, run, "--resume"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_weights(run, tmp_path / "clean")
    no_temporaries(run)


# ---- export ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_export_past_a_file_size_limit_is_one_line_and_the_rerun_completes(tmp_path, suffix):
    manifest = write_tiny_dataset(tmp_path / "data", num_videos=6)
    export = ("extract", "features", "--backbone", "c3d-tiny", "--manifest", manifest,
              "--clip", "8x2", "--step", "4", "--store")
    clean, store = tmp_path / f"clean{suffix}", tmp_path / f"store{suffix}"
    assert weakfeat(*export, clean).returncode == 0
    video_bytes = max(p.stat().st_size for p in (clean / "videos").rglob("*") if p.is_file())
    done = weakfeat(*export, store, fsize=video_bytes // 2)
    one_line_error(done, "File too large", "finished work is kept", str(store))
    assert done.returncode != -signal.SIGSEGV
    no_temporaries(store)
    assert weakfeat("extract", "inspect", store, "--verify").returncode == 0  # kept = intact
    assert weakfeat(*export, store).returncode == 0
    ref, got = open_store(clean), open_store(store)
    assert sorted(got.video_ids()) == sorted(ref.video_ids())
    for video_id in ref.video_ids():
        np.testing.assert_array_equal(got.read_features(video_id), ref.read_features(video_id))


# ---- pipelines ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_runner_takes_its_running_steps_with_it(tmp_path):
    """SIGKILL runs no cleanup in the runner; its steps still end (the kernel's parent-death
    signal), so no orphan trains on and a re-run does not meet its run folder's lock."""
    recipe = tmp_path / "slow.yaml"
    recipe.write_text("steps:\n  - id: slow\n    command: [data, synth, --preset, demo, "
                      "--out, \"{out}\", --no-progress]\n")
    runner = weakfeat("pipelines", "run", recipe, "--out", tmp_path / "out", wait=False)

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == runner.pid:  # the field after the state: the parent's pid
                found.append(int(stat.parent.name))
        return found

    step: list[int] = []
    kill_when(runner, lambda: bool(step.extend(children()) or step) and
              (time.sleep(1.0) is None))  # let the step get past its start
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in step):
        assert time.monotonic() < deadline, f"step process(es) {step} outlived the runner"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
