"""`weakfeat extract features --submit slurm|local`: job arrays through submitit.

The local executor runs the tasks as subprocesses here; SLURM is stood in for by a fake
``sbatch`` that keeps the script it is given, so the array's resources can be checked."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from extract.cli import extract as extract_cli
from extract.store import open_store
from extract.store import submit as submitting
from extract.store.export import export_features
from tests.extract.test_export import SPEC, assert_same_store, make_manifest

VIDEOS = {"long": 30, "short": 5, "exact": 15, "mid": 20, "v4": 12}


def features_args(root: Path, store: Path | str, *more: str) -> list[str]:
    return ["features", "--backbone", "x3d-tiny", "--manifest", str(root), "--store", str(store),
            *more]


def test_submit_local_two_shards_wait_equals_one_process(tmp_path):
    root = make_manifest(tmp_path / "m", VIDEOS)
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(extract_cli, features_args(
        root, store, "--submit", "local", "--shards", "2", "--wait"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{store}: 5 videos in 2 shards (4, 1 per shard)"
    assert lines[1].startswith("submitted 2 local jobs (pids ")
    assert lines[2] == f"  logs:   {store}.logs"
    assert lines[3] == (f"  watch:  weakfeat extract status {store} --manifest {root} "
                        "--shards 2")
    assert any("jobs finished 2/2; videos: 5/5 complete, 0 failed" in line for line in lines)
    assert lines[-1] == (f"{store}: 5 written, 0 already complete, 0 failed "
                         "(of 5 selected) by 2 jobs")
    assert sorted(open_store(store).video_ids()) == sorted(VIDEOS)
    export_features(model_spec=SPEC, manifest=root, store=tmp_path / "one.zarr", device="cpu",
                    progress=False)
    assert_same_store(tmp_path / "one.zarr", store)
    logs = sorted(p.name for p in (tmp_path / "s.zarr.logs").iterdir())
    assert sum(name.endswith("_log.out") for name in logs) == 2


def test_submit_local_wait_reports_failed_videos_and_exits_1(tmp_path):
    root = make_manifest(tmp_path / "m", {"good": 12, "corrupt": -1})
    store = tmp_path / "s.h5"
    result = CliRunner().invoke(extract_cli, features_args(
        root, store, "--submit", "local", "--shards", "2", "--wait", "--logs",
        str(tmp_path / "logs")))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[-2] == (f"{store}: 1 written, 0 already complete, 1 failed "
                         "(of 2 selected) by 2 jobs")
    assert lines[-1].startswith("  FAILED corrupt: ") and "corrupt.mp4" in lines[-1]
    assert (tmp_path / "logs").is_dir() and not Path(f"{store}.logs").exists()
    result = CliRunner().invoke(extract_cli, ["status", str(store), "--manifest", str(root),
                                              "--shards", "2"])
    assert result.exit_code == 1 and "FAILED corrupt" in result.output


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """``sbatch`` (keeps its script, answers job 4242) and ``srun`` on PATH; the script's path."""
    bin_dir, kept = tmp_path / "bin", tmp_path / "sbatch_script.sh"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {kept}\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return kept


def test_submit_slurm_writes_one_array_with_the_resources(tmp_path, fake_slurm, monkeypatch):
    from submitit.core.utils import pickle_load

    root = make_manifest(tmp_path / "m", VIDEOS)
    monkeypatch.chdir(tmp_path)  # a relative store and manifest become absolute for the jobs
    result = CliRunner().invoke(extract_cli, features_args(
        Path("m"), "s.zarr", "--split", "test", "--submit", "slurm", "--shards", "3",
        "--slurm-partition", "gpu", "--slurm-time", "30", "--slurm-gpus", "1", "--slurm-cpus",
        "4", "--slurm-mem", "16", "--clip", "4x2"))
    assert result.exit_code == 0, result.output
    logs = tmp_path / "s.zarr.logs"
    assert result.output.splitlines()[1:] == [
        "submitted job array 4242 (3 tasks) on slurm", f"  logs:   {logs}",
        (f"  watch:  weakfeat extract status {tmp_path / 's.zarr'} --manifest {root} --shards 3 "
         "--split test"),
        "  cancel: scancel 4242"]
    script = fake_slurm.read_text().splitlines()
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu", "#SBATCH --time=30",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB",
                 f"#SBATCH --output={logs}/%A_%a_0_log.out"):
        assert line in script
    # one pickled call per task: shard i of 3, the same (absolute) arguments
    calls = [pickle_load(logs / f"4242_{i}_submitted.pkl") for i in range(3)]
    assert [c.args[1:] for c in calls] == [(0, 3), (1, 3), (2, 3)]
    assert all(isinstance(c.function, submitting.ShardTask) for c in calls)
    task = calls[0].args[0]
    assert task["manifest"] == str(root) and task["store"] == str(tmp_path / "s.zarr")
    assert task["model"] == {"backbone": "x3d-tiny", "pretrained": None, "run_dir": None}
    assert (task["split"], task["clip"], task["crops"]) == ("test", (4, 2), 1)
    assert not (tmp_path / "s.zarr").exists()  # the driver exports nothing itself


def test_a_store_url_needs_logs_and_is_passed_on_as_is(tmp_path, fake_slurm):
    from submitit.core.utils import pickle_load

    root = make_manifest(tmp_path / "m", VIDEOS)
    url = "s3://bucket/run/features.zarr"
    result = CliRunner().invoke(extract_cli, features_args(root, url, "--submit", "slurm",
                                                           "--shards", "2"))
    assert result.exit_code == 2 and "give --logs DIR" in result.output
    result = CliRunner().invoke(extract_cli, features_args(
        root, url, "--submit", "slurm", "--shards", "2", "--logs", str(tmp_path / "logs")))
    assert result.exit_code == 0, result.output
    assert f"weakfeat extract status {url} --manifest" in result.output
    assert pickle_load(tmp_path / "logs" / "4242_1_submitted.pkl").args[0]["store"] == url


@pytest.mark.parametrize("more,code,message", [
    (["--submit", "local", "--shards", "2", "--shard", "0/2"], 2, "drop --shard"),
    (["--submit", "local", "--shards", "2", "--workers", "2"], 2, "drop --workers"),
    (["--submit", "slurm", "--shards", "2", "--scheduler", "tcp://h:1"], 2, "/ --scheduler"),
    (["--shards", "2"], 2, "--shards: only with --submit slurm|local"),
    (["--wait"], 2, "--wait: only with --submit"),
    (["--slurm-gpus", "1", "--logs", "x"], 2, "--slurm-gpus, --logs: only with --submit"),
    (["--submit", "local"], 2, "--submit needs --shards N"),
    (["--submit", "local", "--shards", "2", "--slurm-partition", "gpu"], 2,
     "--slurm-partition only applies with --submit slurm"),
    (["--submit", "local", "--shards", "2", "--clip", "abc"], 2, "--clip must look like FxTAU"),
    (["--submit", "local", "--shards", "2", "--split", "nosuch"], 1, "no video in split"),
    (["--submit", "local", "--shards", "0"], 2, "--shards"),
])
def test_option_misuse_is_refused_before_any_work(tmp_path, more, code, message):
    root = make_manifest(tmp_path / "m", {"a": 5})
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(extract_cli, features_args(root, store, *more))
    assert result.exit_code == code, result.output
    assert message in result.output
    if code == 1:
        assert result.output.strip().splitlines()[-1].startswith("Error: ")
        assert len(result.output.strip().splitlines()) == 1
    assert not store.exists() and not Path(f"{store}.logs").exists()


def test_missing_submitit_or_sbatch_is_one_line(tmp_path, monkeypatch):
    root = make_manifest(tmp_path / "m", {"a": 5})
    args = features_args(root, tmp_path / "s.zarr", "--submit", "slurm", "--shards", "2")
    monkeypatch.setenv("PATH", str(tmp_path / "no_such_bin"))
    result = CliRunner().invoke(extract_cli, args)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        ("Error: --submit slurm: sbatch and srun not on PATH (run this on a SLURM login node, or "
         "try the command with --submit local)")]
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` fails
    result = CliRunner().invoke(extract_cli, args)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: --submit needs submitit: pip install 'weakfeat[slurm]'"]


class FakeJob:
    """A job that ends at the ``ends_at``-th ``done()`` call, with a result or an error."""

    def __init__(self, job_id: str, ends_at: int, result=None, error: Exception | None = None):
        self.job_id, self.ends_at, self.calls = job_id, ends_at, 0
        self._result, self._error = result, error
        self.paths = type("Paths", (), {"stderr": Path(f"/logs/{job_id}_0_log.err")})()

    def done(self) -> bool:
        self.calls += 1
        return self.calls >= self.ends_at

    def result(self):
        if self._error is not None:
            raise self._error
        return self._result


def test_wait_reports_each_end_then_sums_up_the_shards():
    from submitit.core.utils import FailedJobError, UncompletedJobError

    trace = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "extract.store.layout.StoreMismatchError: s.zarr: written by a different extractor")
    crashed = FailedJobError(  # as submitit words a task that raised
        f"Job (task=0) failed during processing with trace:\n----------------------\n{trace}\n"
        "----------------------\nYou can check full logs with 'job.stderr(0)' and "
        "'job.stdout(0)'or at paths:\n  - /logs/7_1_0_log.err\n  - /logs/7_1_0_log.out")
    timed_out = UncompletedJobError("Job 7_2 (task: 0) with path /logs/7_2_0_result.pkl\n"
                                    "has not produced any output (state: TIMEOUT)\n"
                                    "Error stream produced:\n" + "-" * 40 + "\nslurmstepd: ...")
    done = {"shard": 0, "host": socket.gethostname(), "selected": 3, "skipped": 1,
            "written": 1, "failures": {"bad": "VideoReadError: cannot read"}}
    jobs = [FakeJob("7_0", 2, result=done), FakeJob("7_1", 3, error=crashed),
            FakeJob("7_2", 3, error=timed_out)]
    lines: list[str] = []
    outcomes = submitting.wait_for_jobs(jobs, progress=lambda: "videos: ...", echo=lines.append,
                                        poll_s=0, every_s=3600)
    assert [line.split("] ", 1)[1] for line in lines] == [
        "jobs finished 0/3; videos: ...", "jobs finished 1/3; videos: ...",
        "jobs finished 3/3; videos: ..."]
    assert [o.error for o in outcomes] == [
        None, "extract.store.layout.StoreMismatchError: s.zarr: written by a different extractor",
        ("Job 7_2 (task: 0) with path /logs/7_2_0_result.pkl has not produced any output "
         "(state: TIMEOUT)")]
    assert submitting.summary_text("s.zarr", outcomes).splitlines() == [
        ("s.zarr: 1 written, 1 already complete, 1 failed (of 3 selected) by 3 jobs, 2 of them "
         "did not finish"),
        "  FAILED bad: VideoReadError: cannot read",
        ("  shard 1/3 (job 7_1) did not finish: extract.store.layout.StoreMismatchError: s.zarr: "
         "written by a different extractor; log: /logs/7_1_0_log.err"),
        ("  shard 2/3 (job 7_2) did not finish: Job 7_2 (task: 0) with path "
         "/logs/7_2_0_result.pkl has not produced any output (state: TIMEOUT); log: "
         "/logs/7_2_0_log.err")]
    assert not submitting.succeeded(outcomes)
    assert submitting.succeeded([submitting.Outcome(0, "1", {**done, "failures": {}})])


def test_a_timed_out_or_preempted_task_is_requeued_with_the_same_call():
    task = submitting.ShardTask()
    again = task.checkpoint({"store": "s.zarr"}, 1, 4)
    assert again.function is task and again.args == ({"store": "s.zarr"}, 1, 4)


def test_the_sbatch_example_splits_the_manifest_by_array_task(tmp_path):
    """docs/slurm_export.sbatch run as tasks 0 and 1 of `--array=0-1`, as SLURM would."""
    import subprocess

    import torch

    from extract.backbones import build_backbone

    root = make_manifest(tmp_path / "m", VIDEOS)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({"model": build_backbone("x3d-tiny", num_classes=2).state_dict(),
                "config": {"model": {"backbone": "x3d-tiny"}, "train": {"mode": "adaptfocus"}}},
               run / "checkpoints" / "last.pt")
    script = Path(__file__).resolve().parents[2] / "docs" / "slurm_export.sbatch"
    env = {**os.environ, "RUN": str(run), "MANIFEST": str(root), "DEVICE": "cpu",
           "STORE": str(tmp_path / "s.zarr"), "SLURM_ARRAY_TASK_MIN": "0",
           "SLURM_ARRAY_TASK_MAX": "1", "SLURM_ARRAY_TASK_COUNT": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    held = []
    for task in (0, 1):
        done = subprocess.run(["bash", str(script)], check=False, capture_output=True,
                              env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"shard {task}/2 from SLURM_ARRAY_TASK_ID={task}" in done.stderr
        held.append(len(open_store(tmp_path / "s.zarr").video_ids()))
    assert held == [4, 5]  # shard 0 holds 4 of the 5 videos (see the --submit local test)
    assert sorted(open_store(tmp_path / "s.zarr").video_ids()) == sorted(VIDEOS)


def test_a_preempted_local_task_is_requeued_and_resumes(tmp_path):
    """SIGUSR2 (SLURM's preemption / time-limit warning) mid-export: the task comes back and
    skips the videos its first run completed."""
    import time

    root = make_manifest(tmp_path / "m", {f"v{i}": 60 for i in range(12)})
    store = tmp_path / "s.zarr"
    task = {"model": {"backbone": "x3d-tiny", "pretrained": None, "run_dir": None},
            "manifest": str(root), "store": str(store), "device": "cpu", "batch_size": 2,
            "step": 1, "decode_threads": 1}  # (step 1: many clips, a few seconds' export)
    (job,) = submitting.submit_export(task, cluster="local", shards=1, logs=str(tmp_path / "l"),
                                      resources=submitting.Resources())
    deadline = time.monotonic() + 120
    while not (store / "videos").is_dir() or len(open_store(store).video_ids()) < 2:
        assert not job.done() and time.monotonic() < deadline, job.stderr()
        time.sleep(0.02)
    # what SLURM sends before preempting or at the time limit, to the task (the local
    # controller's child; the controller itself does not forward it)
    controller = job._process.pid
    (task_pid,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task_pid), signal.SIGUSR2)
    result = job.result()
    assert result["failures"] == {} and result["selected"] == 12
    assert result["skipped"] >= 2 and result["written"] + result["skipped"] == 12
    assert "Requeued job" in job.stderr()
    assert len(open_store(store).video_ids()) == 12
