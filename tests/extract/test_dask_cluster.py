"""`weakfeat extract features --scheduler`: a real `dask scheduler` and `dask worker` processes.

Everything runs as separate processes, as on a cluster: the scheduler, each worker (nanny and
its worker process) and the `weakfeat` driver. Each process leads its own session, so a test
kills a worker with everything it started, and the teardown leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from extract.store import open_store
from extract.store.export import export_features
from tests.extract.test_export import SPEC, assert_same_store, make_manifest

REPO = Path(__file__).resolve().parents[2]
DASK = [sys.executable, "-m", "dask"]


def weakfeat_command() -> list[str]:
    script = Path(sys.executable).with_name("weakfeat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.main"]


def child_env(**extra: str) -> dict[str, str]:
    # This checkout first, so that workers unpickle the tasks from the code under test.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


class Cluster:
    """A `dask scheduler` and named `dask worker` processes on 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: dict[str, subprocess.Popen] = {}
        self.address = ""
        folder.mkdir(parents=True, exist_ok=True)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([*DASK, *args], stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.folder, env=child_env(), start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_scheduler(self, timeout: float = 30.0) -> str:
        info = self.folder / "scheduler.json"
        # The idle and death timeouts end the cluster by itself should pytest be killed
        # before its teardown.
        proc = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                         "--no-dashboard", "--scheduler-file", str(info),
                                         "--idle-timeout", "120s"])
        deadline = time.monotonic() + timeout
        while not self.address:
            assert proc.poll() is None, f"scheduler exited:\n{self.log('scheduler')}"
            assert time.monotonic() < deadline, f"no scheduler file:\n{self.log('scheduler')}"
            try:
                self.address = json.loads(info.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not (fully) written
                time.sleep(0.05)
        return self.address

    def start_worker(self, name: str) -> None:
        self._start(name, ["worker", self.address, "--name", name, "--host", "127.0.0.1",
                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                           "--death-timeout", "60"])

    def kill(self, name: str) -> None:
        """SIGKILL the process group: a nanny and its worker process die together."""
        stop(self.procs[name])

    def close(self) -> None:
        for name in sorted(self.procs, key=lambda n: n == "scheduler"):  # workers first
            self.kill(name)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path / "cluster")
    try:
        yield started
    finally:
        started.close()


def start_cluster(cluster: Cluster, workers: int) -> None:
    """Start a scheduler and ``workers`` workers, and wait until they all joined it."""
    from distributed import Client

    cluster.start_scheduler()
    for i in range(workers):
        cluster.start_worker(f"w{i}")
    with Client(cluster.address, timeout=30) as client:
        client.wait_for_workers(workers, timeout=60)


@dataclass
class Watch:
    client: Any  # the test's own client, beside the driver's
    names: dict[str, str]  # worker address -> --name, of the workers there at the start
    tasks: list[dict[str, Any]]  # filled when the block ends: key, worker, status, ...

    def ran_on(self) -> dict[str, str]:
        """Task key -> name of the worker that completed it."""
        return {t["key"]: self.names.get(t["worker"], t["worker"]) for t in self.tasks
                if t["status"] == "OK"}


@contextmanager
def watching(cluster: Cluster) -> Iterator[Watch]:
    """The tasks the scheduler saw run, of every client, until the block ends."""
    from distributed import Client, get_task_stream

    with Client(cluster.address, timeout=30) as client, get_task_stream(client) as stream:
        names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
        yield Watch(client, names, stream.data)


def export_command(manifest: Path, store: Path, *args: str) -> list[str]:
    return [*weakfeat_command(), "extract", "features", "--backbone", "x3d-tiny", "--manifest",
            str(manifest), "--store", str(store), *args]


def start_export(manifest: Path, store: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(export_command(manifest, store, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=child_env(**env),
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group, which outlives ``proc`` while its children live."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has ended
        pass
    proc.wait()


def run_export(manifest: Path, store: Path, *args: str, timeout: float = 120,
               **env: str) -> subprocess.CompletedProcess:
    """The export command to its end (killed after ``timeout`` s)."""
    driver = start_export(manifest, store, *args, **env)
    try:
        out, err = driver.communicate(timeout=timeout)
    finally:
        stop(driver)
    return subprocess.CompletedProcess(driver.args, driver.returncode, out, err)


def committed(store: Path) -> int:
    """Videos complete in ``store`` (not files in videos/: zarr keeps the group's zarr.json
    there)."""
    return len(open_store(store).video_ids()) if store.exists() else 0


def reference_store(manifest: Path, store: Path) -> Path:
    export_features(model_spec=SPEC, manifest=manifest, store=store, device="cpu",
                    progress=False)
    return store


def test_export_on_a_scheduler_and_two_worker_processes(tmp_path, cluster):
    manifest = make_manifest(tmp_path / "m", {f"v{i}": 20 + 7 * i for i in range(6)})
    start_cluster(cluster, workers=2)
    store = tmp_path / "d.zarr"
    with watching(cluster) as watch:
        result = run_export(manifest, store, "--scheduler", cluster.address)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 written, 0 already complete, 0 failed" in result.stdout
    assert set(watch.ran_on().values()) == {"w0", "w1"}  # both workers exported videos
    # Workers run one torch thread (the nanny sets OMP_NUM_THREADS=1), the reference too, but
    # the float sums need not be bitwise equal: as test_dask_local_cluster_two_processes.
    assert_same_store(reference_store(manifest, tmp_path / "ref.zarr"), store, exact=False)
    assert open_store(store).failures() == {}


def kill_a_busy_worker(cluster: Cluster, watch: Watch, store: Path, driver: subprocess.Popen,
                       timeout: float = 90) -> tuple[str, list[str], int]:
    """Once ``store`` holds a video, SIGKILL a worker that is running a task: (its name, the
    keys of the tasks it held, how many videos were complete then). The export must still run.
    """
    deadline = time.monotonic() + timeout
    while driver.poll() is None and time.monotonic() < deadline:
        done = committed(store)
        busy = {watch.names[a]: keys for a, keys in watch.client.processing().items() if keys}
        if done >= 1 and busy:
            name, keys = next(iter(busy.items()))
            cluster.kill(name)
            return name, [str(k) for k in keys], done
        time.sleep(0.05)
    raise AssertionError(f"the export ended (exit {driver.poll()}) before a worker was killed")


def test_a_worker_killed_mid_export_loses_no_video(tmp_path, cluster):
    """SIGKILL a worker while it runs a task: dask reruns the task on the other worker, which
    skips the videos already committed, and the export still ends complete and correct."""
    lengths = {f"v{i:02d}": 300 + 5 * i for i in range(16)}
    manifest = make_manifest(tmp_path / "m", lengths)
    start_cluster(cluster, workers=2)
    store = tmp_path / "d.zarr"
    with watching(cluster) as watch:
        driver = start_export(manifest, store, "--scheduler", cluster.address)
        try:
            killed, lost_tasks, done = kill_a_busy_worker(cluster, watch, store, driver)
            out, err = driver.communicate(timeout=90)
        finally:
            stop(driver)
        assert len(watch.client.nthreads()) == 1  # the killed worker did not come back
    assert driver.returncode == 0, err[-3000:]
    assert done < len(lengths)  # killed mid-export
    assert f"{len(lengths)} written, 0 already complete, 0 failed" in out
    survivor = ({"w0", "w1"} - {killed}).pop()
    ran_on = watch.ran_on()
    assert lost_tasks and all(ran_on[key] == survivor for key in lost_tasks), (lost_tasks, ran_on)
    opened = open_store(store)
    assert opened.video_ids() == sorted(lengths) and opened.failures() == {}
    assert_same_store(reference_store(manifest, tmp_path / "ref.zarr"), store, exact=False)


def wait_until(condition: Callable[[], bool], what: str, driver: subprocess.Popen,
               timeout: float = 60) -> None:
    """Poll ``condition``; fails if ``driver`` ends or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert driver.poll() is None, f"the export ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_losing_every_worker_fails_after_the_wait_then_resumes(tmp_path, cluster):
    """The only worker dies after a task finished but before the driver fetched its result
    (the driver is frozen meanwhile): dask would wait for good for a worker to compute it
    again. The driver gives up after --wait-for-workers with one line; a rerun with a new
    worker adds only the missing videos."""
    lengths = {f"v{i}": 200 + 5 * i for i in range(8)}
    manifest = make_manifest(tmp_path / "m", lengths)
    start_cluster(cluster, workers=1)
    store = tmp_path / "d.zarr"
    with watching(cluster) as watch:
        def finished_tasks() -> int:
            return sum(t["status"] == "OK" for t in watch.client.get_task_stream())

        driver = start_export(manifest, store, "--scheduler", cluster.address,
                              "--wait-for-workers", "2")
        try:
            wait_until(lambda: committed(store) >= 1, "a video was committed", driver)
            os.kill(driver.pid, signal.SIGSTOP)
            before = finished_tasks()
            wait_until(lambda: finished_tasks() > before, "a task finished", driver)
            cluster.kill("w0")
            os.kill(driver.pid, signal.SIGCONT)
            out, err = driver.communicate(timeout=60)
        finally:
            stop(driver)
    line = one_error_line(subprocess.CompletedProcess(driver.args, driver.returncode, out, err))
    assert f"every dask worker left the dask scheduler at {cluster.address}" in line
    assert "within 2 s; finished videos are kept" in line
    kept = committed(store)
    assert 0 < kept < len(lengths), kept
    cluster.start_worker("w-new")
    result = run_export(manifest, store, "--scheduler", cluster.address)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(lengths) - kept} written, {kept} already complete, 0 failed" in result.stdout
    assert_same_store(reference_store(manifest, tmp_path / "ref.zarr"), store, exact=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's one `Error:` line (no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_no_scheduler_at_the_address_fails_with_one_line(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    manifest = make_manifest(tmp_path / "m", {"v": 10})
    started = time.monotonic()
    # Dask's connect timeout (30 s by default), shortened to keep the test quick.
    result = run_export(manifest, tmp_path / "d.zarr", "--scheduler", address, timeout=60,
                        DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s")
    assert time.monotonic() - started < 30
    line = one_error_line(result)
    assert f"cannot connect to the dask scheduler at {address}" in line


def test_a_scheduler_without_workers_fails_after_the_wait(tmp_path, cluster):
    manifest = make_manifest(tmp_path / "m", {"v": 10})
    address = cluster.start_scheduler()
    started = time.monotonic()
    result = run_export(manifest, tmp_path / "d.zarr", "--scheduler", address,
                        "--wait-for-workers", "2", timeout=60)
    assert time.monotonic() - started < 30
    line = one_error_line(result)
    assert f"no dask worker joined the dask scheduler at {address} within 2 s" in line
