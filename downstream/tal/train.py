"""Training of a localization method on a feature store, with checkpoint selection on a
validation split.

The model trains on the split ``data.train_split`` ("train" by default). Validation is the
manifest's "val" split; without one, or when "val" is the training split itself (THUMOS'14), a
deterministic held-out part of the training split (``downstream.data.held_out_split``: the sha1
of each video id decides). The test split is never read during training. (The public code of
ASL, RSKP and LACP reports the best epoch chosen on the test set; this project does not, so its
numbers are lower and honest.)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.config import from_dict, load_config, to_dict
from data_manifests.run_folder import RunFolder, atomic_target
from data_manifests.schema import Manifest, load_manifest
from downstream.data import DataError, TalDataset, collate_tal, held_out_split
from downstream.data.tal import open_features
from downstream.tal import METHODS
from downstream.tal.base import TalModel
from downstream.tal.config import TalConfig
from downstream.tal.postprocess import Detection, PostprocessConfig, detect

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_score: float = -1.0  # best validation average mAP so far
    best_epoch: int = -1  # epoch (1-based) of that score


def build_model(config: TalConfig, *, feature_dim: int, num_classes: int) -> TalModel:
    """The method named by ``config.method`` with its own config section as arguments."""
    method_config = getattr(config, config.method)
    return METHODS[config.method](feature_dim=feature_dim, num_classes=num_classes,
                                  **dataclasses.asdict(method_config))


def split_ids(manifest: Manifest, train_split: str = "train",
              val_fraction: float = 0.2) -> tuple[list[str], list[str]]:
    """(training ids, checkpoint-selection ids).

    Selection is on the "val" split when the manifest has one and ``train_split`` is another
    split; otherwise on a deterministic held-out ``val_fraction`` of ``train_split``
    (:func:`downstream.data.held_out_split`), so the two lists never share a video.
    """
    if train_split == "test":
        raise DataError(f"{manifest.root}: data.train_split=test; the test split is the one "
                        "localization is scored on, never trained on")
    if train_split != "val" and any(v.split == "val" for v in manifest.videos):
        train = sorted(v.video_id for v in manifest.videos if v.split == train_split)
        val = sorted(v.video_id for v in manifest.videos if v.split == "val")
        if not train:
            known = sorted({v.split for v in manifest.videos})
            raise DataError(f"{manifest.root}: no video in split {train_split!r} "
                            f"(data.train_split; splits: {', '.join(known)})")
        return train, val
    return held_out_split(manifest, val_fraction, split=train_split)


def ground_truth(manifest: Manifest, video_ids: Sequence[str]) -> dict[str, list[tuple]]:
    """``{video: [(label, start, end)]}`` from the manifest segments."""
    records = manifest.by_id()
    out = {}
    for video_id in video_ids:
        segments = records[video_id].segments
        if segments is None:
            raise DataError(f"manifest {manifest.root}: video {video_id!r} has no segments; "
                            "localization is evaluated against segments")
        out[video_id] = [(s.label, s.start, s.end) for s in segments]
    return out


@torch.no_grad()
def predict_videos(model: TalModel, dataset: TalDataset, post: PostprocessConfig,
                   device: str = "cpu", progress: bool = False) -> dict[str, list[Detection]]:
    """Detections of every (whole) video of ``dataset``."""
    model.eval()
    out = {}
    for index in tqdm(range(len(dataset)), desc="predict", disable=not progress, leave=False):
        batch = collate_tal([dataset[index]])
        scores, cas = model.localize(batch["features"].to(device), batch["mask"].to(device))
        out[batch["video_id"][0]] = detect(scores[0].cpu().numpy(), cas[0].cpu().numpy(),
                                           batch["timestamps"][0], dataset.classes, post)
    return out


def evaluate(model: TalModel, dataset: TalDataset, post: PostprocessConfig,
             tiou: Sequence[float], device: str = "cpu") -> dict[str, Any]:
    """``evaluate_detection`` of the model's detections on ``dataset``'s videos."""
    from downstream.metrics.detection import evaluate_detection

    predictions = predict_videos(model, dataset, post, device)
    gt = ground_truth(dataset.manifest, [v.video_id for v in dataset.videos])
    return evaluate_detection(gt, predictions, tiou, classes=list(dataset.classes))


def save_checkpoint(path: Path, **payload: Any) -> None:
    tmp = atomic_target(path)
    torch.save(payload, tmp)
    tmp.replace(path)


def train_tal(*, method: str, features: Any, manifest: str | Path | Manifest, out: str | Path,
              overrides: Sequence[str] = (), config_path: str | Path | None = None,
              resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``method`` on the store ``features`` and the manifest; returns results.json."""
    # Setup
    config = load_config(TalConfig, config_path, [f"method={method}", *overrides])
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    store = open_features(features)
    run = RunFolder(out)
    run.create(config, resume=resume)
    device, seed = config.train.device, config.train.seed
    torch.manual_seed(seed)

    # Data
    train_ids, val_ids = split_ids(manifest, config.data.train_split,
                                   config.data.val_fraction)
    log.info("%d training and %d validation videos", len(train_ids), len(val_ids))
    model = build_model(config, feature_dim=int(store.dim), num_classes=len(manifest.classes))
    train_set = TalDataset(store, manifest, train_ids, needs=model.needs,
                           max_snippets=config.data.max_snippets, random_crop=True, seed=seed,
                           cache=config.data.cache_features)
    whole_train = TalDataset(store, manifest, train_ids, needs=model.needs,
                             cache=train_set.feature_cache if config.data.cache_features
                             else False)
    val_set = TalDataset(store, manifest, val_ids, needs=("segments",),
                         cache=config.data.cache_features)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.train.batch_size,
                                         shuffle=True, collate_fn=collate_tal,
                                         generator=generator)

    def whole_videos():
        return torch.utils.data.DataLoader(whole_train, batch_size=1, collate_fn=collate_tal)

    # Model and optimizer
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr,
                                 weight_decay=config.train.weight_decay)
    state = TrainState()
    last = run.checkpoints / "last.pt"
    if resume and last.exists():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = TrainState(**ckpt["state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        generator.set_state(ckpt["rng"]["loader"])
        train_set.rng.bit_generator.state = ckpt["rng"]["crops"]
        log.info("resumed %s after epoch %d", run.path, state.epoch)

    # Loop
    meta = {"feature_dim": int(store.dim), "classes": list(manifest.classes),
            "config": to_dict(config), "extractor": dict(getattr(store, "extractor", {}) or {})}
    for epoch in range(state.epoch, config.train.epochs):
        tick = time.perf_counter()
        model.start_epoch(epoch, whole_videos)
        model.train()
        parts: dict[str, list[float]] = {}
        bar = tqdm(loader, desc=f"{config.method} epoch {epoch + 1}/{config.train.epochs}",
                   disable=not progress, leave=False)
        for batch in bar:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, terms = model.training_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key, value in {"loss": loss.item(), **terms}.items():
                parts.setdefault(key, []).append(value)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        record: dict[str, Any] = {"epoch": epoch + 1, "seconds": time.perf_counter() - tick,
                                  **{k: float(np.mean(v)) for k, v in parts.items()}}
        state.epoch = epoch + 1
        if state.epoch % config.train.eval_every == 0 or state.epoch == config.train.epochs:
            metrics = evaluate(model, val_set, config.post, config.train.tiou, device)
            record["val_average_mAP"] = float(metrics["average_mAP"])
            record["val_mAP"] = [float(m) for m in metrics["mAP"]]
            if metrics["average_mAP"] > state.best_score:
                state.best_score, state.best_epoch = float(metrics["average_mAP"]), state.epoch
                save_checkpoint(run.checkpoints / "best.pt", model=model.state_dict(),
                                state=dataclasses.asdict(state), **meta)
        run.log(record)
        save_checkpoint(last, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        state=dataclasses.asdict(state),
                        rng={"torch": torch.get_rng_state(), "loader": generator.get_state(),
                             "crops": train_set.rng.bit_generator.state}, **meta)

    # Save
    results = {"method": config.method, "best_epoch": state.best_epoch,
               "val_average_mAP": state.best_score, "epochs": state.epoch,
               "train_split": config.data.train_split, "train_videos": len(train_ids),
               "val_videos": len(val_ids)}
    run.write_results(results)
    return results


def load_trained(run_dir: str | Path, device: str = "cpu") -> tuple[TalModel, TalConfig, dict]:
    """The selected (best on validation, else last) model of a run, its config and metadata."""
    run = RunFolder(run_dir)
    for name in ("best.pt", "last.pt"):
        path = run.checkpoints / name
        if path.exists():
            break
    else:
        raise FileNotFoundError(f"{run.path}: no checkpoints/best.pt or last.pt (was it trained "
                                "with `weakfeat downstream train tal`?)")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    config = from_dict(TalConfig, ckpt["config"], source=str(path))
    model = build_model(config, feature_dim=ckpt["feature_dim"], num_classes=len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), config, ckpt
