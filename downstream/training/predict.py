"""A trained run on a manifest split: its predictions in the task's standard file format, or
their metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from data_manifests.config import ConfigError, load_config, to_dict
from data_manifests.schema import load_manifest
from downstream.data.store_dataset import DataError, StoreDataset, open_features
from downstream.task import Task
from downstream.training.checkpoint import load_trained
from downstream.training.config import check_device


def with_overrides(task: Task, config: Any, overrides: Sequence[str]) -> Any:
    """``config`` with ``--set`` overrides of the task's own sections only (post-processing,
    evaluation): the model's and the training's settings are what the weights were made with."""
    for item in overrides:
        section = item.partition("=")[0].split(".")[0].strip()
        if section not in task.sections:
            raise ConfigError(f"--set {item!r}: predict can change only the {task.name} "
                              f"sections {sorted(task.sections) or '(none)'}; the rest is fixed "
                              "by the trained weights")
    if not overrides:
        return config
    return load_config(type(config), None, list(overrides), base=to_dict(config))


def run_predictions(run_dir: str | Path, *, features: Any, manifest: str | Path,
                    split: str | None = "test", checkpoint: Literal["best", "last"] = "best",
                    overrides: Sequence[str] = (), device: str = "cpu", progress: bool = True
                    ) -> tuple[Task, Any, StoreDataset, dict[Any, Any]]:
    """(task, run config, dataset, predictions by item key) of every item of ``split``."""
    check_device(device, "--device")
    model, config, ckpt, task = load_trained(run_dir, checkpoint, device)
    config = with_overrides(task, config, overrides)
    manifest = load_manifest(manifest)
    store = open_features(features)
    if int(store.dim) != int(ckpt["feature_dim"]):
        raise DataError(f"feature store {features} has dim {store.dim}, but run {run_dir} was "
                        f"trained on dim {ckpt['feature_dim']} features")
    trained_on = ckpt.get("signature", {})
    for key, value in task.signature(manifest).items():
        if key in trained_on and value != trained_on[key]:
            raise DataError(f"manifest {manifest.root}: its {key} {value[:5]}... differ from "
                            f"the {key} run {run_dir} was trained on {trained_on[key][:5]}...")
    videos = manifest.split(split)
    dataset = task.dataset(store, manifest, [v.video_id for v in videos], config, cache=False)
    predictions = task.predict(model, dataset, config, device=device, progress=progress)
    return task, config, dataset, predictions


def predict_run(run_dir: str | Path, *, features: Any, manifest: str | Path, out: str | Path,
                split: str | None = "test", checkpoint: Literal["best", "last"] = "best",
                overrides: Sequence[str] = (), device: str = "cpu",
                progress: bool = True) -> Path:
    """Predict every item of ``split`` with the run's ``checkpoint``; write the task's format."""
    task, _config, dataset, predictions = run_predictions(
        run_dir, features=features, manifest=manifest, split=split, checkpoint=checkpoint,
        overrides=overrides, device=device, progress=progress)
    return task.write(predictions, dataset, Path(out), source=str(features))


def evaluate_run(run_dir: str | Path, *, features: Any, manifest: str | Path,
                 split: str | None = "test", checkpoint: Literal["best", "last"] = "best",
                 overrides: Sequence[str] = (), device: str = "cpu",
                 progress: bool = False) -> dict[str, Any]:
    """The task's metrics of the run's predictions of ``split`` (what `downstream evaluate`
    gives on the written file)."""
    task, config, dataset, predictions = run_predictions(
        run_dir, features=features, manifest=manifest, split=split, checkpoint=checkpoint,
        overrides=overrides, device=device, progress=progress)
    return task.evaluate(predictions, dataset, config)
