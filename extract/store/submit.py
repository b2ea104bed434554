"""`weakfeat extract features --submit slurm|local`: one job array, one shard per task.

The driver imports neither torch nor the model: it validates the manifest, submits ``N`` tasks
through submitit (``slurm``: an ``sbatch --array`` job; ``local``: subprocesses on this
machine, for trying a command out and for tests) and, with ``--wait``, follows them. Each task
runs :func:`run_shard`, i.e. ``export_features(..., shard=(i, N))``, into the shared store;
the store's own guarantees (atomic videos, resumable, several writers) make a rerun of the
same command finish what failed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from data_manifests.errors import UserError
from extract.store.location import is_url

CLUSTERS = ("slurm", "local")
DEFAULT_TIME_MIN = 240  # submitit's own default is 5 minutes: far too short for an export
PROGRESS_EVERY_S = 60.0  # a progress line at least this often while waiting


class SubmitError(UserError):
    """The jobs could not be submitted (no submitit, no sbatch, sbatch refused them)."""


@dataclass(frozen=True)
class Resources:
    """What each task asks for (None: the cluster's default)."""

    time_min: int = DEFAULT_TIME_MIN
    partition: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    mem_gb: float | None = None


def default_logs(store: str) -> str:
    """``<store>.logs``, next to a local store (a URL store needs ``--logs``)."""
    if is_url(store):
        raise SubmitError(f"{store}: a store URL has no folder beside it; give --logs DIR")
    return os.path.abspath(store.rstrip("/") + ".logs")


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SubmitError("--submit needs submitit: pip install 'weakfeat[slurm]'") from None
    return submitit


def local_paths(export_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same arguments with local paths made absolute: a job may start in another folder."""
    out = dict(export_kwargs)
    for key in ("manifest", "videos_root", "run_dir"):
        if out.get(key) is not None:
            out[key] = os.path.abspath(out[key])
    if out.get("pretrained") and os.path.exists(out["pretrained"]):  # a checkpoint file
        out["pretrained"] = os.path.abspath(out["pretrained"])
    if not is_url(str(out["store"])):
        out["store"] = os.path.abspath(out["store"])
    return out


def run_shard(export_kwargs: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """One task of the array: shard ``index`` of ``count``. Returns plain data (the summary)."""
    import logging

    from extract.store.export import ModelSpec, export_features

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    kwargs = dict(export_kwargs)
    spec = ModelSpec(**kwargs.pop("model"))
    print(f"weakfeat: shard {index}/{count} of {kwargs['store']} on {socket.gethostname()}",
          flush=True)
    summary = export_features(model_spec=spec, shard=(index, count), progress=False, **kwargs)
    print(summary.text(), flush=True)
    return {"shard": index, "host": socket.gethostname(), "selected": summary.selected,
            "skipped": summary.skipped, "written": summary.written,
            "failures": dict(summary.failures)}


class ShardTask:
    """What each task runs: :func:`run_shard`. Being checkpointable (submitit calls
    ``checkpoint`` on SLURM's timeout / preemption signal) the task is requeued with the same
    arguments, up to 3 times, instead of failing: the export resumes, skipping complete videos."""

    def __call__(self, export_kwargs: dict[str, Any], index: int, count: int) -> dict[str, Any]:
        return run_shard(export_kwargs, index, count)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def check_cluster(cluster: str) -> Any:
    """submitit, once it is known that ``cluster`` can take jobs from here."""
    if cluster not in CLUSTERS:
        raise SubmitError(f"--submit {cluster!r}: choose from {CLUSTERS}")
    submitit = _submitit()
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if cluster == "slurm" and missing:
        raise SubmitError(f"--submit slurm: {' and '.join(missing)} not on PATH (run this on a "
                          "SLURM login node, or try the command with --submit local)")
    return submitit


def submit_export(export_kwargs: dict[str, Any], *, cluster: str, shards: int, logs: str,
                  resources: Resources) -> list[Any]:
    """Submit ``shards`` tasks of :func:`run_shard`; returns submitit's jobs, shard order."""
    submitit = check_cluster(cluster)
    kwargs = local_paths(export_kwargs)
    try:
        executor = submitit.AutoExecutor(folder=logs, cluster=cluster)
        executor.update_parameters(
            name="weakfeat-export", timeout_min=resources.time_min, nodes=1, tasks_per_node=1,
            gpus_per_node=resources.gpus, cpus_per_task=resources.cpus, mem_gb=resources.mem_gb,
            slurm_partition=resources.partition, slurm_array_parallelism=shards)
        return executor.map_array(ShardTask(), [kwargs] * shards, range(shards),
                                  [shards] * shards)
    except (OSError, RuntimeError) as exc:  # sbatch refused (bad partition, time limit...)
        detail = " ".join(str(exc).split())
        raise SubmitError(f"--submit {cluster}: submission failed: {detail}") from exc


def array_id(jobs: Sequence[Any]) -> str:
    """``123`` for a SLURM array ``123_0 .. 123_7`` (tasks' ids otherwise, comma-separated)."""
    heads = {str(job.job_id).split("_")[0] for job in jobs}
    return heads.pop() if len(heads) == 1 else ",".join(str(job.job_id) for job in jobs)


def status_command(store: str, manifest: str, split: str | None, shards: int) -> str:
    words = ["weakfeat", "extract", "status", store, "--manifest", manifest, "--shards",
             str(shards)]
    if split:
        words += ["--split", split]
    return shlex.join(words)


def cancel_command(jobs: Sequence[Any], cluster: str) -> str:
    ident = array_id(jobs)
    return f"scancel {ident}" if cluster == "slurm" else f"kill {ident.replace(',', ' ')}"


def submitted_text(jobs: Sequence[Any], *, cluster: str, logs: str, watch: str) -> str:
    """What to tell the user once the array is submitted."""
    ident = array_id(jobs)
    if cluster == "local":
        what = f"{_count(len(jobs), 'local job')} (pid{'s' * (len(jobs) > 1)} {ident})"
    elif len(jobs) > 1:
        what = f"job array {ident} ({len(jobs)} tasks) on slurm"
    else:
        what = f"job {ident} on slurm"
    return "\n".join([f"submitted {what}", f"  logs:   {logs}", f"  watch:  {watch}",
                      f"  cancel: {cancel_command(jobs, cluster)}"])


@dataclass
class Outcome:
    """How one task ended: its summary, or why it did not finish."""

    shard: int
    job_id: str
    result: dict[str, Any] | None
    error: str | None = None
    log: str | None = None


def wait_for_jobs(jobs: Sequence[Any], *, progress: Callable[[], str],
                  echo: Callable[[str], None], poll_s: float = 5.0,
                  every_s: float = PROGRESS_EVERY_S) -> list[Outcome]:
    """Block until every job ends; a line when a job ends and every ``every_s`` seconds."""
    finished: set[int] = set()
    last_line: float | None = None  # None: report at once
    while True:
        for index, job in enumerate(jobs):
            if index not in finished and job.done():
                finished.add(index)
                last_line = None
        if last_line is None or time.monotonic() - last_line >= every_s:
            echo(f"[{time.strftime('%H:%M:%S')}] jobs finished {len(finished)}/{len(jobs)}; "
                 f"{progress()}")
            last_line = time.monotonic()
        if len(finished) == len(jobs):
            break
        time.sleep(poll_s)
    return [_outcome(index, job) for index, job in enumerate(jobs)]


def _outcome(index: int, job: Any) -> Outcome:
    try:
        return Outcome(index, str(job.job_id), job.result())
    except Exception as exc:  # noqa: BLE001 - a task's crash, timeout or kill; reported per shard
        return Outcome(index, str(job.job_id), None, error=_reason(exc),
                       log=str(job.paths.stderr))


def _reason(exc: Exception) -> str:
    """One line out of submitit's error: the traceback's last line when the task raised
    (the trace sits between two dashed lines), else its first two lines (e.g. "has not
    produced any output (state: TIMEOUT)")."""
    lines = [line.strip() for line in str(exc).splitlines()]
    dashes = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    if len(dashes) >= 2:
        trace = [line for line in lines[dashes[0] + 1:dashes[1]] if line]
        if trace:
            return trace[-1][:300]
    return " ".join(line for line in lines[:2] if line)[:300] or type(exc).__name__


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def summary_text(store: str, outcomes: Sequence[Outcome]) -> str:
    """The tasks' summaries added up, then each failed video and each task that crashed."""
    done = [o.result for o in outcomes if o.result is not None]
    failures: dict[str, str] = {}
    for result in done:
        failures.update(result["failures"])
    total = {key: sum(r[key] for r in done) for key in ("selected", "skipped", "written")}
    crashed = [o for o in outcomes if o.result is None]
    head = (f"{store}: {total['written']} written, {total['skipped']} already complete, "
            f"{len(failures)} failed (of {total['selected']} selected) by "
            f"{_count(len(outcomes), 'job')}")
    lines = [head + (f", {len(crashed)} of them did not finish" if crashed else "")]
    lines += [f"  FAILED {vid}: {reason}" for vid, reason in sorted(failures.items())]
    lines += [f"  shard {o.shard}/{len(outcomes)} (job {o.job_id}) did not finish: {o.error}; "
              f"log: {o.log}" for o in crashed]
    return "\n".join(lines)


def succeeded(outcomes: Sequence[Outcome]) -> bool:
    return all(o.result is not None and not o.result["failures"] for o in outcomes)


def interrupted_text(jobs: Sequence[Any], cluster: str, watch: str) -> str:
    """After Ctrl-C while waiting: SLURM jobs go on; local ones got the interrupt too (they
    share this terminal's process group)."""
    if cluster == "local":
        return f"stopped waiting; the local jobs were interrupted too. progress: {watch}"
    return (f"stopped waiting; the jobs go on. watch: {watch}; cancel: "
            f"{cancel_command(jobs, cluster)}")

