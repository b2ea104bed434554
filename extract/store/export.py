"""Export per-clip features of every video of a manifest into a feature store.

Clips slide over the whole video: clip ``k`` starts at frame ``k * step`` and samples ``F``
frames ``tau`` apart (span ``(F - 1) * tau + 1`` frames); there are
``1 + ceil(max(0, N - span) / step)`` clips (fewer if a start would fall past the end), so
every frame is covered when ``step <= span``, and frames past the end repeat the last frame (videos shorter than one clip give one padded clip). The timestamp
of a clip is its centre, ``(start + span / 2) / fps`` seconds, on a uniform grid; the last,
padded clip is centred on the frames it covers (never past the video's end).

Pipeline per process (memory does not grow with video length):

    decode thread:  iter_frames -> per-frame resize/crop/normalize -> batches of clips -> queue
    main thread:    forward_features on each batch (B, C, F, H, W) -> (B, D)
    writer thread:  StoreWriter.write_video (atomic, see layout.py)

A batch never mixes videos, so a video's features do not depend on its neighbours: a resumed
run gives the same values as an uninterrupted one. With ``crops=3`` the features of the three
crops (SlowFast ``uniform_crop``) are averaged.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.errors import UserError
from data_manifests.schema import Manifest, load_manifest
from extract.clip_grid import clip_count, in_shard
from extract.store.feature_store import StoreWriter, create_store
from extract.store.layout import StoreError

log = logging.getLogger(__name__)
_QUEUE_BATCHES = 4  # decoded batches waiting for the forward pass


@dataclass(frozen=True)
class ClipGeometry:
    clip_frames: int  # F: frames per clip
    frame_stride: int  # tau: frames between sampled frames
    step: int  # frames between the starts of consecutive clips

    @property
    def span(self) -> int:
        return (self.clip_frames - 1) * self.frame_stride + 1

    def __post_init__(self) -> None:
        if min(self.clip_frames, self.frame_stride, self.step) < 1:
            raise ValueError(f"clip geometry needs positive F, tau and step, got {self}")


def clip_starts(num_frames: int, geometry: ClipGeometry) -> np.ndarray:
    """(T,) start frame of every clip covering ``num_frames`` frames."""
    count = clip_count(num_frames, geometry.clip_frames, geometry.frame_stride, geometry.step)
    return np.arange(count, dtype=np.int64) * geometry.step


def clip_timestamps(starts: np.ndarray, geometry: ClipGeometry, fps: float,
                    num_frames: int | None = None) -> np.ndarray:
    """(T,) clip-centre seconds. Given the video's ``num_frames``, a padded clip (past the last
    frame) is centred on the frames it really covers, so that no timestamp lies past the end
    (a 1-frame video's clip is at half a frame, not half a span)."""
    covered = np.full(len(starts), float(geometry.span))
    if num_frames is not None:
        covered = np.clip(num_frames - np.asarray(starts, dtype=float), 1.0, covered)
    return (starts + covered / 2.0) / fps


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelSpec:
    """How to build the feature extractor: a trained run, or a backbone (+ pretrained weights).

    Picklable, so dask workers rebuild the model themselves instead of receiving it.
    """

    backbone: str | None = None  # name in extract.backbones.BACKBONES
    pretrained: str | None = None  # "kinetics400" | checkpoint path | None (random init)
    run_dir: str | None = None  # a stage-1 run folder (weak / full supervision)

    def build(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """(model in eval mode, {backbone, weights_sha256, supervision})."""
        from extract.backbones import build_backbone, weights_sha256

        if (self.run_dir is None) == (self.backbone is None):
            raise ValueError("give exactly one of --run RUN_DIR and --backbone NAME")
        if self.run_dir is not None:
            from extract.training import load_trained_backbone

            trained = load_trained_backbone(self.run_dir)
            info = {"backbone": trained.backbone, "weights_sha256": trained.weights_sha256,
                    "supervision": trained.supervision}
            return trained.model.eval(), info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random init must be the same in every process and rerun
            model = build_backbone(self.backbone, num_classes=1, pretrained=self.pretrained)
        # Kinetics(-like) pretraining is the paper's "Kinc"; random weights are only for tests.
        supervision = "kinc" if self.pretrained is not None else "random"
        return model.eval(), {"backbone": self.backbone, "weights_sha256": weights_sha256(model),
                              "supervision": supervision}


_MODEL_CACHE: dict[Any, tuple[torch.nn.Module, dict[str, Any]]] = {}


def cached_model(spec: Any, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """One model per process (dask workers run many tasks), on ``device``. Keyed by the device
    too: moving a shared module would pull it from under a caller on another device."""
    key = (spec, device)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        model, info = spec.build()
        _MODEL_CACHE[key] = (model.to(device), info)
    return _MODEL_CACHE[key]


# ----------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class ExportOptions:
    geometry: ClipGeometry
    crop_size: int  # pixels
    short_side: int  # pixels
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crops: int = 1  # 1: centre crop; 3: three crops along the long side, features averaged
    batch_size: int = 8  # clips per forward pass
    device: str = "cpu"
    decode_threads: int = 2  # videos decoded concurrently


def frame_preparer(opts: ExportOptions) -> Callable[[np.ndarray], torch.Tensor]:
    """(H, W, C) uint8 -> (crops, C, S, S) normalized float, as prepare_clip does per clip."""
    from extract.transforms import (
        center_crop,
        normalize,
        resize_short_side,
        three_crops,
        to_float01,
    )

    def prepare(frame: np.ndarray) -> torch.Tensor:
        clip = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(1)  # (C, 1, H, W)
        clip = resize_short_side(to_float01(clip), opts.short_side)
        crops = (three_crops(clip, opts.crop_size) if opts.crops == 3
                 else [center_crop(clip, opts.crop_size)])
        return torch.stack([normalize(c, opts.mean, opts.std)[:, 0] for c in crops])

    if opts.crops not in (1, 3):
        raise ValueError(f"--crops must be 1 or 3, got {opts.crops}")
    return prepare


@dataclass
class VideoJob:
    video_id: str
    path: Path


@dataclass
class _Batch:
    video_id: str
    clips: torch.Tensor  # (B * crops, C, F, S, S)
    last: bool
    info: dict[str, Any] = field(default_factory=dict)  # on the last batch: num_frames, fps, ...


@dataclass
class _Failed:
    video_id: str
    reason: str


def iter_clip_batches(path: Path, opts: ExportOptions,
                      prepare: Callable[[np.ndarray], torch.Tensor]
                      ) -> Iterator[tuple[torch.Tensor, dict[str, Any] | None]]:
    """Stream one video as batches ``(B * crops, C, F, S, S)``; the last one carries
    ``{num_frames, fps, duration, timestamps}``. Holds at most ~span + B * F frames."""
    from data_manifests.video_reader import iter_frames, probe_video

    info = probe_video(path)
    geo = opts.geometry
    starts = clip_starts(info.num_frames, geo)
    last_index = info.num_frames - 1

    def needed(index: int) -> bool:  # O(F) test instead of a set that grows with the video
        if index == last_index:
            return True
        for j in range(geo.clip_frames):
            offset = index - j * geo.frame_stride
            if offset >= 0 and offset % geo.step == 0 and offset // geo.step < len(starts):
                return True
        return False

    frames: dict[int, torch.Tensor] = {}
    pending: list[torch.Tensor] = []  # clips of the current batch, each (crops, C, F, S, S)
    k = 0  # next clip to emit
    decoded = -1

    def emit_ready(upto: int) -> Iterator[torch.Tensor]:
        nonlocal k
        while k < len(starts):
            idx = [min(int(starts[k]) + j * geo.frame_stride, last_index)
                   for j in range(geo.clip_frames)]
            if idx[-1] > upto:
                return
            pending.append(torch.stack([frames[i] for i in idx], dim=2))
            k += 1
            if k < len(starts):  # frames before the next clip are no longer needed
                for i in [i for i in frames if i < starts[k]]:
                    del frames[i]
            if len(pending) == opts.batch_size:
                yield _flatten(pending)
                pending.clear()

    for index, frame in enumerate(iter_frames(path)):
        decoded = index
        if index >= starts[min(k, len(starts) - 1)] and needed(index):
            frames[index] = prepare(frame)
        for batch in emit_ready(index):
            yield batch, None
    if decoded < 0:
        raise StoreError(f"{path}: no frame could be decoded")
    if decoded < last_index:  # iter_frames stops early only within its truncation tolerance
        last_index = decoded
        frames.setdefault(decoded, prepare(frame))
    for batch in emit_ready(last_index):
        yield batch, None
    if k != len(starts):
        raise StoreError(f"{path}: emitted {k} of {len(starts)} clips")
    meta = {"num_frames": info.num_frames, "fps": info.fps, "duration": info.duration,
            "timestamps": clip_timestamps(starts, geo, info.fps, info.num_frames)}
    yield (_flatten(pending) if pending else None), meta


def _flatten(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    batch = torch.stack(list(clips))  # (B, crops, C, F, S, S)
    return batch.flatten(0, 1)


def _decode_worker(jobs: queue.Queue, opts: ExportOptions, out: queue.Queue,
                   stop: threading.Event) -> None:
    """Take videos from ``jobs`` until it is empty; one video's batches go out in order."""
    prepare = frame_preparer(opts)
    while not stop.is_set():
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        try:
            for clips, meta in iter_clip_batches(job.path, opts, prepare):
                out.put(_Batch(job.video_id, clips, meta is not None, meta or {}))
                if stop.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - any bad video is recorded, the others continue
            out.put(_Failed(job.video_id, f"{type(exc).__name__}: {exc}"))
    out.put(None)


def _write_worker(writer: StoreWriter, items: queue.Queue, errors: list[BaseException]) -> None:
    while (item := items.get()) is not None:
        if errors:
            continue
        video_id, features, meta = item
        try:
            writer.write_video(video_id, features, meta["timestamps"],
                               num_frames=meta["num_frames"], fps=meta["fps"],
                               duration=meta["duration"])
        except BaseException as exc:  # noqa: BLE001 - a failed write (disk full...) stops the run
            errors.append(exc)


def export_videos(jobs: Sequence[VideoJob], writer: StoreWriter, model: torch.nn.Module,
                  opts: ExportOptions, *, progress: bool = True) -> dict[str, str]:
    """Extract and write every job; returns failures (video_id -> reason).

    ``opts.decode_threads`` videos are decoded at once (PyAV and the transforms release the
    GIL); their batches interleave in the queue, each video's in order."""
    pending: queue.Queue = queue.Queue()
    for job in jobs:
        pending.put(job)
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES * opts.decode_threads)
    to_write: queue.Queue = queue.Queue(maxsize=2)
    stop, write_errors = threading.Event(), []
    decoders = [threading.Thread(target=_decode_worker, args=(pending, opts, decoded, stop),
                                 daemon=True, name=f"weakfeat-decode-{i}")
                for i in range(max(1, min(opts.decode_threads, len(jobs))))]
    write_thread = threading.Thread(target=_write_worker, args=(writer, to_write, write_errors),
                                    daemon=True, name="weakfeat-write")
    for thread in (*decoders, write_thread):
        thread.start()
    failures: dict[str, str] = {}
    parts: dict[str, list[torch.Tensor]] = {}  # video_id -> (B, D) features so far
    bar = tqdm(total=len(jobs), unit="video", desc="export", disable=not progress)
    running = len(decoders)
    try:
        with torch.inference_mode():
            while running:
                item = decoded.get()
                if item is None:
                    running -= 1
                    continue
                if isinstance(item, _Failed):
                    failures[item.video_id] = item.reason
                    parts.pop(item.video_id, None)
                    bar.update(1)
                    continue
                if item.video_id in failures:
                    continue
                video_parts = parts.setdefault(item.video_id, [])
                if item.clips is not None:
                    try:
                        clips = item.clips.to(opts.device, non_blocking=True)
                        feats = model.forward_features(clips)  # (B * crops, D)
                        feats = feats.view(-1, opts.crops, feats.shape[-1]).mean(1)  # (B, D)
                        video_parts.append(feats.float().cpu())
                    except Exception as exc:  # noqa: BLE001 (recorded per item)
                        failures[item.video_id] = f"forward failed: {type(exc).__name__}: {exc}"
                        parts.pop(item.video_id)
                        bar.update(1)
                        continue
                if item.last:
                    features = torch.cat(parts.pop(item.video_id)).numpy()  # (T, D)
                    to_write.put((item.video_id, features, item.info))
                    bar.update(1)
                if write_errors:
                    raise write_errors[0]
    finally:
        stop.set()
        while any(t.is_alive() for t in decoders):  # unblock decoders if we stopped early
            try:
                decoded.get(timeout=0.1)
            except queue.Empty:
                pass
        to_write.put(None)
        write_thread.join()
        bar.close()
    if write_errors:
        raise write_errors[0]
    return failures


# ----------------------------------------------------------------------------- the command
@dataclass
class ExportSummary:
    store: str | Path  # a local path or an s3:// URL
    selected: int  # videos in this split / shard
    skipped: int  # already complete before this run
    written: int
    failures: dict[str, str]

    def text(self) -> str:
        lines = [(f"{self.store}: {self.written} written, {self.skipped} already complete, "
                 f"{len(self.failures)} failed (of {self.selected} selected)")]
        lines += [f"  FAILED {vid}: {reason}" for vid, reason in sorted(self.failures.items())]
        return "\n".join(lines)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def set_cpu_threads(requested: int | None, decode_threads: int, device: str) -> int:
    """Set torch's intra-op threads for an export in this process; returns the number.

    ``requested``, else (on the CPU) the cores the decoders leave, at least 1 and at most
    torch's default: with a small backbone the export is decode-bound, and torch's extra threads
    only compete with the decoders (2 cores, 2 decoders: 1 thread exports the demo 1.36x faster
    than torch's default 2; docs/benchmarks.md, "Exports on dask workers"). On a GPU nothing
    changes unless asked.
    """
    if requested is None:
        if resolve_device(device) != "cpu":
            return torch.get_num_threads()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        requested = max(1, min(torch.get_num_threads(), cores - decode_threads))
    torch.set_num_threads(requested)
    return requested


def export_features(*, model_spec: Any, manifest: str | Path | Manifest, store: str | Path,
                    split: str | None = None, clip: tuple[int, int] | None = None,
                    step: int | None = None, crops: int = 1, batch_size: int = 8,
                    shard: tuple[int, int] = (0, 1), workers: int = 0,
                    scheduler: str | None = None, device: str = "auto",
                    videos_root: str | Path | None = None, dtype: str = "float32",
                    codec: str | None = None, decode_threads: int = 2, retries: int = 2,
                    wait_for_workers: float = 60.0, progress: bool = True) -> ExportSummary:
    """Export features of the selected videos into ``store``; resumes (skips complete videos).

    ``clip`` (F, tau) defaults to the backbone's InputSpec, ``step`` to ``F * tau`` frames.
    ``workers > 0`` runs a dask LocalCluster of that many processes; ``scheduler`` uses an
    existing cluster, waiting up to ``wait_for_workers`` seconds for a worker to join it.
    Failures are recorded in the store's failures file and returned.
    """
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    selected = manifest.split(split)
    on_dask = workers > 0 or bool(scheduler)
    # On dask each worker resolves "auto" itself: its GPUs are not the driver's.
    device = device if on_dask else resolve_device(device)
    model, info = cached_model(model_spec, "cpu" if on_dask else device)  # workers build theirs
    spec = model.input_spec
    frames, stride = clip or (spec.num_frames, spec.frame_stride)
    geometry = ClipGeometry(frames, stride, step or frames * stride)
    fps_values = {v.fps for v in selected.videos}
    extractor = {**info, "clip_frames": geometry.clip_frames,
                 "frame_stride": geometry.frame_stride, "clip_step": geometry.step,
                 "fps": fps_values.pop() if len(fps_values) == 1 else None, "crops": crops,
                 "dim": int(model.feature_dim), "dtype": dtype}
    opts = ExportOptions(geometry=geometry, crop_size=spec.crop_size, short_side=spec.short_side,
                         mean=tuple(spec.mean), std=tuple(spec.std), crops=crops,
                         batch_size=batch_size, device=device, decode_threads=decode_threads)
    writer = create_store(store, extractor=extractor, manifest_sha256=manifest.sha256(),
                          codec=codec)
    done = writer.done_ids()
    chosen = [v for v in selected.videos if in_shard(v.video_id, shard)]
    todo = [v for v in chosen if v.video_id not in done]
    failures: dict[str, str] = {}
    jobs = []
    for video in todo:
        try:
            jobs.append(VideoJob(video.video_id, manifest.video_path(video, videos_root)))
        except Exception as exc:  # noqa: BLE001 (recorded per item)
            failures[video.video_id] = str(exc)
    log.info("%s: %d selected, %d already complete, %d to export", store, len(chosen),
             len(chosen) - len(todo), len(jobs))
    if jobs and on_dask:
        failures.update(_export_dask(jobs, store=store, extractor=extractor,
                                     manifest_sha256=manifest.sha256(), model_spec=model_spec,
                                     opts=opts, workers=workers, scheduler=scheduler,
                                     retries=retries, wait_for_workers=wait_for_workers,
                                     progress=progress))
    elif jobs:
        failures.update(export_videos(jobs, writer, model, opts, progress=progress))
    writer.record_failures(failures)
    writer.close()
    now_done = writer.done_ids()
    failures = {k: v for k, v in failures.items() if k not in now_done}
    return ExportSummary(store=store, selected=len(chosen), skipped=len(chosen) - len(todo),
                         written=sum(v.video_id in now_done for v in todo), failures=failures)


def _export_task(jobs: list[VideoJob], store: str, extractor: dict[str, Any],
                 manifest_sha256: str | None, model_spec: Any, opts: ExportOptions
                 ) -> dict[str, str]:
    """One dask task: a chunk of videos, in a worker process (model cached per process)."""
    opts = replace(opts, device=resolve_device(opts.device))
    model, info = cached_model(model_spec, opts.device)
    if info["weights_sha256"] != extractor["weights_sha256"]:
        raise StoreError(f"worker built weights {info['weights_sha256']}, driver "
                         f"{extractor['weights_sha256']}")
    writer = create_store(store, extractor=extractor, manifest_sha256=manifest_sha256)
    done = writer.done_ids()
    return export_videos([j for j in jobs if j.video_id not in done], writer, model, opts,
                         progress=False)


def _export_dask(jobs: list[VideoJob], *, store: str | Path, extractor: dict[str, Any],
                 manifest_sha256: str | None, model_spec: Any, opts: ExportOptions,
                 workers: int, scheduler: str | None, retries: int, progress: bool,
                 wait_for_workers: float = 60.0) -> dict[str, str]:
    """Run the jobs as dask tasks (a chunk of videos each) on a LocalCluster or ``scheduler``.

    A task lost with its worker is rerun by dask on another one; it skips the videos its first
    run committed. With ``scheduler``, waits ``wait_for_workers`` seconds at most for a worker,
    at the start and whenever every worker has left, then fails (finished videos are kept).
    """
    from distributed import CancelledError, Client, LocalCluster, as_completed

    cluster = None
    where = f"the dask scheduler at {scheduler}" if scheduler else "the local dask cluster"
    resume = "finished videos are kept, run the command again to resume"
    if scheduler:
        try:
            # Dask retries the connection for distributed.comm.timeouts.connect (30 s default).
            client = Client(scheduler)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot connect to {where}: {exc}") from None
        try:
            client.wait_for_workers(1, timeout=wait_for_workers)
        except TimeoutError:
            client.close()
            raise UserError(f"no dask worker joined {where} within {wait_for_workers:g} s "
                            f"(start some with `dask worker {scheduler}`, or raise "
                            "--wait-for-workers)") from None
        n_workers = len(client.nthreads())
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client, n_workers = Client(cluster), workers
    # ~4 tasks per worker: balance without rebuilding the pipeline for every video.
    n_chunks = min(len(jobs), 4 * n_workers)
    chunks = [jobs[i::n_chunks] for i in range(n_chunks)]
    failures: dict[str, str] = {}
    bar = tqdm(total=len(jobs), unit="video", desc="export", disable=not progress)

    def collect(index: int, future: Any, result: Any) -> None:
        """Take a finished task's failures (all of its videos when it failed)."""
        if future.cancelled() or isinstance(result, CancelledError):
            # the client cancels every future when it loses the scheduler
            what = "lost the connection to" if client.status != "running" else "cancelled by"
            raise UserError(f"export {what} {where}; {resume}")
        if future.status == "error":  # after its retries
            error = future.exception()
            for job in chunks[index]:
                failures.setdefault(job.video_id, f"task failed after {retries} retries: "
                                                  f"{type(error).__name__}: {error}")
        else:
            failures.update(result)
        bar.update(len(chunks[index]))

    def alone(since: float | None) -> float | None:
        """When the scheduler was first seen without a worker (None: it has some); fails once
        that lasted ``wait_for_workers``: dask would keep the tasks waiting for good."""
        try:
            if client.nthreads():
                return None
        except OSError as exc:
            raise UserError(f"lost {where}: {exc}; {resume}") from None
        since = since or time.monotonic()
        if time.monotonic() - since > wait_for_workers:
            raise UserError(f"every dask worker left {where} and none joined within "
                            f"{wait_for_workers:g} s; {resume}")
        return since

    try:
        futures = [client.submit(_export_task, chunk, str(store), extractor, manifest_sha256,
                                 model_spec, opts, retries=retries, pure=False)
                   for chunk in chunks]
        index_of = {future.key: i for i, future in enumerate(futures)}
        # Results are fetched in the background, never by a blocking call here: a result whose
        # worker died before it was fetched is computed again (the rerun skips the committed
        # videos), and that needs a worker, which the loop below waits for a bounded time.
        finished = as_completed(futures, with_results=True, raise_errors=False)
        del futures  # a collected task is released, so that no lost worker makes it rerun
        left = len(chunks)
        alone_since, next_check = None, 0.0
        while left:
            batch = finished.next_batch(block=False)
            for future, result in batch:
                collect(index_of[future.key], future, result)
                left -= 1
            if batch:
                continue
            # (a LocalCluster's nannies restart their workers: only a cluster we do not own)
            if scheduler and time.monotonic() >= next_check:
                alone_since, next_check = alone(alone_since), time.monotonic() + 1.0
            time.sleep(0.05)
    finally:
        bar.close()
        # A client that lost its scheduler logs a traceback when close() cancels its
        # reconnection: the UserError already says what happened.
        client_log = logging.getLogger("distributed.client")
        level = client_log.level
        if client.status != "running":
            client_log.setLevel(logging.CRITICAL)
        try:
            client.close()
        finally:
            client_log.setLevel(level)
        if cluster is not None:
            cluster.close()
    return failures
