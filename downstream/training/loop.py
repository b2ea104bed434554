"""The one training loop of every stage-2 task, with checkpoint selection on a validation split.

The model trains on the split ``data.train_split`` ("train" by default). Validation is the
manifest's "val" split; without one, or when "val" is the training split itself (THUMOS'14), a
deterministic held-out part of the training split (``downstream.data.held_out_split``: the sha1
of each video id decides). The test split is never read during training. (The public code of
ASL, RSKP and LACP reports the best epoch chosen on the test set; this project does not, so its
numbers are lower and honest.)

Phases in order: setup (config, inputs checked before the run folder is written), data, model,
optimizer (and resume), loop (train, validate, select, checkpoint), save. A resumed run restores
the model, optimizer, scheduler, the torch RNG, the loader's shuffling generator and the crop
sampler, so that it ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.config import to_dict
from data_manifests.run_folder import RunFolder, read_checkpoint, write_checkpoint
from data_manifests.schema import Manifest, load_manifest
from downstream.data.batches import GroupBatches, VideoBatches
from downstream.data.splits import split_ids
from downstream.data.store_dataset import open_features, require_annotations
from downstream.tasks import get_task
from downstream.training.checkpoint import build_model
from downstream.training.config import check_device, load_run_config

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_score: float = -1.0  # best validation metric so far
    best_epoch: int = -1  # epoch (1-based) of that score


def make_optimizer(config: Any, parameters: Any) -> torch.optim.Optimizer:
    """``train.optimizer`` over ``parameters`` at ``train.lr`` / ``train.weight_decay`` (Adam and
    AdamW with ``train.adam_eps``)."""
    train = config.train
    if train.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=train.lr, momentum=train.momentum,
                               weight_decay=train.weight_decay)
    cls = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return cls(parameters, lr=train.lr, eps=train.adam_eps, betas=(0.9, train.adam_beta2),
               weight_decay=train.weight_decay)


def update_schedule(config: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The per-update rate schedule of ``train.lr_schedule`` (None: "none"). inverse_sqrt is
    fairseq's: ``warmup_init_lr + n * (lr - warmup_init_lr) / warmup`` for the first updates,
    then ``lr * sqrt(warmup / n)`` (n = updates done)."""
    train = config.train
    if train.lr_schedule != "inverse_sqrt":
        return None

    def factor(n: int) -> float:
        if n < train.warmup_updates:
            return (train.warmup_init_lr + n * (train.lr - train.warmup_init_lr)
                    / train.warmup_updates) / train.lr
        return math.sqrt(train.warmup_updates / n)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_schedule(config: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The per-epoch rate schedule: ``train.lr_milestones`` steps, or "constant_cosine"
    (LTContext's constant_cosine_decay: lr for the first lr_constant_epochs epochs, then
    ``lr_min + (lr - lr_min) (1 + cos(pi e / lr_cosine_epochs)) / 2`` at e epochs after them)."""
    train = config.train
    if train.lr_schedule != "constant_cosine":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(train.lr_milestones), gamma=train.lr_gamma)

    def factor(epoch: int) -> float:
        e = min(max(epoch - train.lr_constant_epochs, 0), train.lr_cosine_epochs)
        cosine = (1 + math.cos(math.pi * e / train.lr_cosine_epochs)) / 2
        return (train.lr_min + (train.lr - train.lr_min) * cosine) / train.lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def training_loader(train_set: Any, manifest: Manifest, config: Any,
                    generator: torch.Generator) -> torch.utils.data.DataLoader:
    """Shuffled batches, one activity per batch (``data.batches: by_activity``) or whole videos
    (``by_video``)."""
    batch_size, how = config.train.batch_size, config.data.batches
    if how == "random":
        return torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True,
                                           collate_fn=train_set.collate, generator=generator)
    videos = [train_set.video_of(key) for key in train_set.keys]
    if how == "by_video":
        sampler = VideoBatches(videos, batch_size, generator)
    else:
        require_annotations(manifest, train_set.videos, ["activity"], "data.batches=by_activity")
        sampler = GroupBatches([train_set.records[v].activity for v in videos], batch_size,
                               generator)
    return torch.utils.data.DataLoader(train_set, batch_sampler=sampler,
                                       collate_fn=train_set.collate)


def train_run(*, task: str, method: str, features: Any, manifest: str | Path | Manifest,
              out: str | Path, overrides: Sequence[str] = (),
              config_path: str | Path | None = None, resume: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Train ``method`` of ``task`` on the store ``features``; returns results.json's content."""
    # Setup: every input is checked before the run folder is written.
    task_ = get_task(task)
    config = load_run_config(task_, method, config_path, list(overrides))
    spec = task_.methods[method]
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    store = open_features(features)
    device, seed = config.train.device, config.train.seed
    check_device(device, "train.device")
    torch.manual_seed(seed)

    # Data
    train_ids, val_ids = split_ids(manifest, config.data.train_split, config.data.val_fraction,
                                   config.data.select_split)
    log.info("%d training and %d validation videos", len(train_ids), len(val_ids))
    cache = config.data.cache_features
    train_set = task_.dataset(store, manifest, train_ids, config, needs=spec.needs,
                              training=True, seed=seed, cache=cache)
    whole_train = task_.dataset(store, manifest, train_ids, config, needs=spec.needs,
                                cache=train_set.feature_cache if cache else False)
    val_set = task_.dataset(store, manifest, val_ids, config, needs=task_.eval_needs,
                            cache=cache)
    generator = torch.Generator().manual_seed(seed)
    loader = training_loader(train_set, manifest, config, generator)

    def whole_videos():
        return torch.utils.data.DataLoader(whole_train, batch_size=1,
                                           collate_fn=whole_train.collate)

    # Model and optimizer
    model_args = task_.model_args(train_set)
    model = build_model(task_, config, model_args).to(device)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = epoch_schedule(config, optimizer)
    updates = update_schedule(config, optimizer)
    run = RunFolder(out)
    run.create(config, resume=resume)
    state = TrainState()
    last = run.checkpoints / "last.pt"
    if resume and last.exists():
        ckpt = read_checkpoint(last, map_location=device,
                               needs=("model", "optimizer", "scheduler"))
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if updates is not None:
            updates.load_state_dict(ckpt["updates"])
        state = TrainState(**ckpt["state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        generator.set_state(ckpt["rng"]["loader"])
        train_set.rng.bit_generator.state = ckpt["rng"]["crops"]
        log.info("resumed %s after epoch %d", run.path, state.epoch)

    # Loop
    meta = {"task": task_.name, "method": method, "model_args": model_args,
            "signature": task_.signature(manifest), "feature_dim": int(store.dim),
            "config": to_dict(config), "extractor": dict(getattr(store, "extractor", {}) or {})}
    name = f"{task_.name} {method}"
    for epoch in range(state.epoch, config.train.epochs):
        tick = time.perf_counter()
        model.start_epoch(epoch, whole_videos)
        model.train()
        parts: dict[str, list[float]] = {}
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{config.train.epochs}",
                   disable=not progress, leave=False)
        for batch in bar:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, terms = model.training_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            if config.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            if updates is not None:
                updates.step()
            for key, value in {"loss": loss.item(), **terms}.items():
                parts.setdefault(key, []).append(value)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        scheduler.step()
        record: dict[str, Any] = {"epoch": epoch + 1, "seconds": time.perf_counter() - tick,
                                  **{k: float(np.mean(v)) for k, v in parts.items()}}
        state.epoch = epoch + 1
        line = f"{name} epoch {state.epoch}/{config.train.epochs}: loss {record['loss']:.4f}"
        if state.epoch % config.train.eval_every == 0 or state.epoch == config.train.epochs:
            metrics = task_.evaluate(task_.predict(model, val_set, config, device=device),
                                     val_set, config)
            record.update({f"val_{k}": v for k, v in _numbers(metrics).items()})
            score = float(metrics[task_.metric])
            line += f", val {task_.metric} {score:.4f}"
            if score > state.best_score or (state.best_epoch < 0 and not math.isnan(score)):
                state.best_score, state.best_epoch = score, state.epoch
                line += " (best)"
                write_checkpoint(run.checkpoints / "best.pt", {
                    "model": model.state_dict(), "state": dataclasses.asdict(state), **meta})
        if progress:
            tqdm.write(line)
        run.log(record)
        write_checkpoint(last, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "state": dataclasses.asdict(state),
            "updates": updates.state_dict() if updates is not None else None,
            "rng": {"torch": torch.get_rng_state(), "loader": generator.get_state(),
                    "crops": train_set.rng.bit_generator.state}, **meta})

    # Save
    results = {"task": task_.name, "method": method, "metric": task_.metric,
               "best_epoch": state.best_epoch, f"val_{task_.metric}": state.best_score,
               "epochs": state.epoch, "train_split": config.data.train_split,
               "train_videos": len(train_ids), "val_videos": len(val_ids),
               "train_items": len(train_set), "val_items": len(val_set)}
    run.write_results(results)
    return results


def result_line(results: dict[str, Any], out: str | Path) -> str:
    """The one line a user waits for at the end of `downstream train`."""
    metric = results["metric"]
    return (f"{results['task']} {results['method']}: best val {metric} "
            f"{100 * results[f'val_{metric}']:.2f} at epoch {results['best_epoch']}"
            f"/{results['epochs']} ({results['train_items']} training items); run {out}")


def _numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers and flat lists of numbers of a metrics dict (what metrics.jsonl logs)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float, np.number)) for v in value):
            out[key] = [float(v) for v in value]
    return out
