"""Stage-1 training: one function, read top to bottom (setup, data, model, optimizer, loop, save).

Modes (``train.mode``): ``full`` (clip labels from annotated intervals), ``noisy`` (every video
label on every clip, Eq. 1) and ``adaptfocus`` (Eq. 9 after a noisy warm-up; paper Section 3).
The ASE state is updated in every mode (cheap), so its success ratio can be compared.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_manifests.config import ConfigError, to_dict
from data_manifests.run_folder import RunFolder, read_checkpoint, write_checkpoint
from data_manifests.schema import Manifest, ManifestError, load_manifest
from data_manifests.validate_videos import validate_videos
from extract.adaptfocus import ActionSaliency, adaptfocus_loss, bce_loss, clip_mask, weighting
from extract.training.config import Stage1Config
from extract.training.data import (
    ClipGeometry,
    EpochBatches,
    FrameReader,
    TrainClips,
    effective_spec,
    require_segments,
    steps_per_epoch,
)
from extract.training.frames import CachedFrames, StreamingFrames

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where this process runs: device, precision and its place among DDP ranks."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: full fp32
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def train(config: Stage1Config, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None) -> Path:
    """Train a backbone as ``config`` says; write the run folder ``out``; return its path.

    ``resume`` continues from ``out/checkpoints/last.pt`` exactly where it stopped.
    ``stop_after`` ends the run after that global step, as a crash right after a checkpoint would
    (it forces a checkpoint there); used to test exact resumption.
    """
    # ---- setup ---------------------------------------------------------------------------
    rt = runtime_from_env(config.train.device, config.train.precision)
    run = RunFolder(out)
    _seed_everything(config.train.seed)

    # ---- data ----------------------------------------------------------------------------
    everything = load_manifest(config.data.manifest)
    manifest = everything.split(config.data.train_split)
    _check_videos(everything, config)
    if config.train.mode == "full":
        require_segments(manifest)
    classes = manifest.classes

    # ---- model ---------------------------------------------------------------------------
    model = build_model(config, num_classes=len(classes)).to(rt.device)
    spec = effective_spec(model.input_spec, num_frames=config.model.num_frames,
                          frame_stride=config.model.frame_stride,
                          crop_size=config.model.crop_size, short_side=config.model.short_side)
    geometry = ClipGeometry(spec.num_frames, spec.frame_stride)
    # The run folder is written once the manifest and the model are known to be usable: a
    # mistake there leaves no half-made run behind.
    if rt.main:
        run.create(config, resume=resume)
    _barrier(rt)
    read = (CachedFrames(manifest, config.data.videos_root, progress=rt.main)
            if config.data.cache_frames else StreamingFrames(manifest, config.data.videos_root))
    dataset = TrainClips(manifest, geometry=geometry, read=read,
                         transform=partial(_train_transform, spec, config.data.horizontal_flip),
                         seed=config.train.seed, need_clip_labels=config.train.mode == "full")
    per_epoch = steps_per_epoch(len(dataset), config.train.batch_size, rt.world_size)
    total_steps = config.train.epochs * per_epoch
    warmup_steps = round(config.adaptfocus.warmup_fraction * total_steps)
    ddp_model = model
    if rt.world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)

    # ---- optimizer -----------------------------------------------------------------------
    optimizer = _optimizer(config, model)
    head_factor = partial(_lr_factor, warmup=config.optim.warmup_steps, total=total_steps,
                          schedule=config.optim.schedule)
    frozen_steps = round(config.optim.freeze_backbone_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # one factor per group: head, trunk
        optimizer, [head_factor, lambda s: 0.0 if s < frozen_steps else head_factor(s)])
    scaler = torch.amp.GradScaler("cuda", enabled=rt.autocast_dtype == torch.float16)
    ase = ActionSaliency([(v.video_id, [manifest.class_index[c] for c in v.labels])
                          for v in manifest.videos], len(classes))
    intervals = _intervals(manifest)
    step = 0
    if resume and (run.checkpoints / "last.pt").exists():
        step = _load_checkpoint(run.checkpoints / "last.pt", model, optimizer, scheduler, scaler,
                                ase)
        log.info("resumed %s at step %d of %d", run.path, step, total_steps)

    loader = DataLoader(
        dataset, num_workers=config.data.num_workers,
        batch_sampler=EpochBatches(len(dataset), batch_size=config.train.batch_size,
                                   seed=config.train.seed, epochs=config.train.epochs,
                                   first_step=step, rank=rt.rank, world_size=rt.world_size),
        persistent_workers=False, pin_memory=rt.device.type == "cuda")

    # ---- loop ----------------------------------------------------------------------------
    progress = tqdm(total=total_steps, initial=step, disable=not rt.main, desc="train",
                    dynamic_ncols=True)
    ddp_model.train()
    tick = time.perf_counter()
    for batch in loader:
        epoch = step // per_epoch
        if step % per_epoch == 0:
            _start_epoch(config, epoch, step, ase, model, manifest, spec, rt, run, intervals,
                         read)
            ddp_model.train()
        clips = batch["clip"].to(rt.device, non_blocking=True)
        video_index = batch["video_index"]
        with torch.autocast(rt.device.type, dtype=rt.autocast_dtype or torch.float32,
                            enabled=rt.autocast_dtype is not None):
            logits = ddp_model(clips)  # (B, K)
        logits = logits.float()
        probs = torch.sigmoid(logits.detach())
        focusing = config.train.mode == "adaptfocus" and step >= warmup_steps
        if config.adaptfocus.estimation == "naive" and config.train.mode == "adaptfocus":
            _naive_estimate(ase, model, manifest, spec, rt, config, read, video_index.tolist(),
                            shard=False)
            ddp_model.train()
        stats: dict[str, float] = {}
        if config.train.mode == "full":
            loss = bce_loss(logits, batch["clip_labels"].to(rt.device))
        elif not focusing:
            loss = bce_loss(logits, batch["video_labels"].to(rt.device))
        else:
            weights, mask, stats = _focus(config, ase, video_index, batch, probs.cpu(),
                                          gamma=epoch / config.train.epochs)
            loss = adaptfocus_loss(logits, batch["video_labels"].to(rt.device),
                                   weights.to(rt.device), mask.to(rt.device))
        # Eq. 3 after the loss: the weights of this clip come from the clips seen before it.
        if config.adaptfocus.estimation == "online" or config.train.mode != "adaptfocus":
            ase.update_online(video_index, batch["time"], probs.cpu())
        _check_finite(loss, step, epoch, video_index, manifest, rt)

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.optim.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        progress.update(1)

        if rt.main and (step % config.train.log_every == 0 or step == total_steps):
            now = time.perf_counter()
            seconds = (now - tick) / (config.train.log_every if step % config.train.log_every == 0
                                      else max(1, step % config.train.log_every))
            tick = now
            run.log({"step": step, "epoch": epoch, "loss": loss.item(),
                     "lr": scheduler.get_last_lr()[0], "focusing": focusing,
                     "seconds_per_step": seconds, **stats})
            progress.set_postfix(loss=f"{loss.item():.4f}")
        every = config.train.checkpoint_every or per_epoch
        if step % every == 0 or step == total_steps or step == stop_after:
            _sync_buffers(model, rt)
            _save_checkpoint(run, rt, config, step, model, optimizer, scheduler, scaler, ase)
        if step == stop_after:
            break
    progress.close()

    # ---- save ----------------------------------------------------------------------------
    if rt.main and step == total_steps and config.train.success_every_epochs and intervals:
        run.log({"step": step, "epoch": config.train.epochs,
                 "ase_success": ase.success_ratio(intervals)})
    _barrier(rt)
    return run.path


# ---------------------------------------------------------------------------------------------
# Pieces of the loop


def build_model(config: Stage1Config, *, num_classes: int) -> nn.Module:
    """The backbone named in the config, with a K-way head (pretrained weights if asked)."""
    from extract.backbones import build_backbone

    return build_backbone(config.model.backbone, num_classes=num_classes,
                          pretrained=config.model.pretrained)


def _focus(config: Stage1Config, ase: ActionSaliency, video_index: Tensor,
           batch: dict[str, Tensor], probs: Tensor, *, gamma: float
           ) -> tuple[Tensor, Tensor, dict[str, float]]:
    """W (Eq. 5) and M (Eq. 7) for a batch, (B, K) each, plus diagnostics."""
    af = config.adaptfocus
    position, spike, valid = ase.lookup(video_index)  # (B, K) each
    probs = probs.to(torch.float64)
    weights = weighting(af.weighting, probs, spike, theta=af.theta, alpha=af.alpha, beta=af.beta)
    mask = clip_mask(batch["time"].reshape(-1, 1), batch["duration"].reshape(-1, 1), position,
                     gamma)
    if not af.action_focusing:
        weights = torch.ones_like(weights)
    if not af.clip_focusing:
        mask = torch.ones_like(mask)
    n = max(1, int(valid.sum()))
    stats = {"above_threshold": float(((probs >= af.theta * spike) & valid).sum()) / n,
             "mask_kept": float((mask.bool() & valid).sum()) / n,
             "gamma": gamma}
    return weights.float(), mask.float(), stats


def _start_epoch(config: Stage1Config, epoch: int, step: int, ase: ActionSaliency,
                 model: nn.Module, manifest: Manifest, spec: Any, rt: Runtime, run: RunFolder,
                 intervals: dict, read: FrameReader) -> None:
    """Epoch-boundary work: remedies (decay, naive re-estimation) and the ASE success log."""
    af = config.adaptfocus
    if epoch > 0 and af.spike_decay != 1.0:
        ase.decay(af.spike_decay)
    if epoch > 0 and af.naive_every_epochs and epoch % af.naive_every_epochs == 0:
        _naive_estimate(ase, model, manifest, spec, rt, config, read,
                        range(len(manifest.videos)), shard=True)
    every = config.train.success_every_epochs
    if rt.main and every and intervals and epoch % every == 0 and epoch > 0:
        run.log({"step": step, "epoch": epoch, "ase_success": ase.success_ratio(intervals)})


@torch.no_grad()
def _naive_estimate(ase: ActionSaliency, model: nn.Module, manifest: Manifest, spec: Any,
                    rt: Runtime, config: Stage1Config, read: FrameReader, video_indices, *,
                    shard: bool) -> None:
    """Eq. 2 on ``naive_clips`` evenly spread clips of each video. With ``shard`` the ranks
    split the (common) list; without it each rank does its own list (its batch). Every rank
    applies every rank's results, so the state stays identical."""
    model.eval()
    geometry = ClipGeometry(spec.num_frames, spec.frame_stride)
    indices = list(video_indices)
    results: list[tuple[int, Tensor, Tensor]] = []
    for index in (indices[rt.rank::rt.world_size] if shard else indices):
        video = manifest.videos[index]
        starts = geometry.evenly_spaced_starts(video, config.adaptfocus.naive_clips)
        clips = torch.stack([_eval_transform(spec, read(video, geometry.indices(s)))
                             for s in starts]).to(rt.device)
        with torch.autocast(rt.device.type, dtype=rt.autocast_dtype or torch.float32,
                            enabled=rt.autocast_dtype is not None):
            probs = torch.sigmoid(model(clips).float()).cpu()
        times = torch.tensor([geometry.centre_time(s, video.fps) for s in starts])
        results.append((index, times, probs))
    if rt.world_size > 1:
        gathered: list[Any] = [None] * rt.world_size
        dist.all_gather_object(gathered, results)
        results = [item for part in gathered for item in part]
    for index, times, probs in results:
        ase.set_naive(index, times, probs)


def _check_videos(manifest: Manifest, config: Stage1Config) -> None:
    """Refuse, before the run starts, videos of the trained or evaluated split that are missing
    or cannot be opened (a header probe: ~1 ms a video), instead of failing hours later."""
    splits = {config.data.train_split, config.eval.split} - {""}
    subset = Manifest(manifest.meta, tuple(v for v in manifest.videos if v.split in splits),
                      manifest.root)
    problems = [p for p in validate_videos(subset, config.data.videos_root, decode=False)
                if p.kind != "duration"]
    if problems:
        shown = "; ".join(f"{p.video_id} ({p.message})" for p in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ManifestError(manifest.root or config.data.manifest, None, "videos",
                            f"{len(problems)} video(s) of split(s) {sorted(splits)} cannot be "
                            f"read: {shown}{more}; `weakfeat data validate` lists every problem")


def _check_finite(loss: Tensor, step: int, epoch: int, video_index: Tensor, manifest: Manifest,
                  rt: Runtime) -> None:
    bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=rt.device)
    if rt.world_size > 1:
        dist.all_reduce(bad)
    if bad.item() > 0:
        ids = [manifest.videos[int(i)].video_id for i in video_index]
        raise FloatingPointError(f"non-finite loss ({loss.item()}) at step {step} (epoch {epoch})"
                                 f"; videos in this process's batch: {ids}")


def _train_transform(spec: Any, flip: bool, frames: Tensor, generator: torch.Generator
                     ) -> Tensor:
    """Random crop (and flip if asked): uint8 (C, T, H, W) -> normalized float."""
    from extract.transforms import prepare_clip

    return prepare_clip(frames, spec, train=True, flip=flip, generator=generator)


def _eval_transform(spec: Any, frames: Tensor) -> Tensor:
    from extract.transforms import prepare_clip

    return prepare_clip(frames, spec, train=False)


def _intervals(manifest: Manifest) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(video_id, class) -> true intervals, for the ASE success ratio (empty without segments)."""
    out: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for video in manifest.videos:
        for seg in video.segments or ():
            out.setdefault((video.video_id, manifest.class_index[seg.label]), []).append(
                (seg.start, seg.end))
    return out


def _optimizer(config: Stage1Config, model: nn.Module) -> torch.optim.Optimizer:
    """Two parameter groups: the head at ``lr`` (first: the logged lr), the trunk scaled."""
    o = config.optim
    head = [p for name, p in model.named_parameters() if name.startswith("head.")]
    trunk = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    groups = [{"params": head, "lr": o.lr}, {"params": trunk, "lr": o.lr * o.backbone_lr_scale}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)


def _lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------
# Runtime, checkpoints


def runtime_from_env(device: str, precision: str = "fp32") -> Runtime:
    """Device, precision and DDP rank (torchrun sets RANK/WORLD_SIZE/LOCAL_RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"train.device={device!r}: not a torch device (auto, cpu, cuda, "
                          "cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={device!r}: no CUDA device is visible to torch here; "
                          "set train.device=cpu (or auto)")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if world_size > 1 else 0)
    if dev.type == "cuda" and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device={device!r}: this process (LOCAL_RANK={local_rank}) "
                          f"needs cuda:{dev.index}, but {torch.cuda.device_count()} GPU(s) are "
                          "visible; start at most one process per GPU (torchrun "
                          "--nproc_per_node), or set train.device=cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        # Ended before the interpreter's teardown: gloo's threads still running then abort the
        # process ("terminate called without an active exception", seen in ~1 run in 10).
        atexit.register(_end_process_group)
    dtype: torch.dtype | None = None
    if dev.type == "cuda" and precision != "fp32":
        if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
            dtype = torch.bfloat16
        else:
            dtype = torch.float16
    return Runtime(dev, dtype, rank, world_size)


def _end_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _barrier(rt: Runtime) -> None:
    if rt.world_size > 1:
        dist.barrier()


def _sync_buffers(model: nn.Module, rt: Runtime) -> None:
    """Rank 0's BatchNorm statistics everywhere (DDP only syncs them at the next forward)."""
    if rt.world_size > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def _save_checkpoint(run: RunFolder, rt: Runtime, config: Stage1Config, step: int,
                     model: nn.Module, optimizer, scheduler, scaler, ase: ActionSaliency) -> None:
    if not rt.main:
        return
    # On the CPU, so that `torch.load` of a GPU run's checkpoint works anywhere without a
    # map_location (resuming moves optimizer state back to its parameters' device).
    state = {"model": _on_cpu(model.state_dict()), "optimizer": _on_cpu(optimizer.state_dict()),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
             "ase": ase.state_dict(), "config": to_dict(config), "rng": _rng_state()}
    write_checkpoint(run.checkpoints / "last.pt", state)


def _on_cpu(state: Any) -> Any:
    """A state dict (nested dicts / lists of tensors) with every tensor copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _on_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_on_cpu(v) for v in state)
    return state


def _load_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, scaler,
                     ase: ActionSaliency) -> int:
    saved = read_checkpoint(path, weights_only=True,
                            needs=("model", "optimizer", "scheduler", "scaler", "step", "ase"))
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    ase.load_state_dict(saved["ase"])
    _set_rng_state(saved["rng"])
    return int(saved["step"])


def _rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain Python values, so that the checkpoint loads with
    ``torch.load(weights_only=True)`` (pretrained loading reads it that way)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
