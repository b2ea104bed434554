"""The localization task: per-video targets, detections from the class activation sequence,
ActivityNet-style results JSON, mAP at the THUMOS'14 tIoUs (validation selects on the average).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm import tqdm

from data_manifests import json_text
from data_manifests.config import ConfigError
from data_manifests.run_folder import atomic_write_text
from data_manifests.schema import Manifest
from downstream.data.store_dataset import DataError, StoreDataset
from downstream.data.tal import TalDataset
from downstream.tal import METHODS
from downstream.tal.postprocess import Detection, PostprocessConfig, detect
from downstream.task import Task, TaskModel

ACTIONNESS_METHODS = ("asl", "lacp")  # their localize() returns a class-agnostic actionness
THUMOS_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class TalEvalConfig:
    tiou: tuple[float, ...] = THUMOS_TIOU  # IoU thresholds of the validation mAP


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
def predict_videos(model: TaskModel, dataset: StoreDataset, post: PostprocessConfig,
                   device: str = "cpu", progress: bool = False) -> dict[str, list[Detection]]:
    """Detections of every (whole) video of ``dataset``."""
    model.eval()
    out = {}
    for index in tqdm(range(len(dataset)), desc="predict", disable=not progress, leave=False):
        batch = dataset.collate([dataset[index]])
        scores, cas, *rest = model.localize(batch["features"].to(device),
                                            batch["mask"].to(device))
        actionness = rest[0][0].cpu().numpy() if rest else None
        out[batch["video_id"][0]] = detect(scores[0].cpu().numpy(), cas[0].cpu().numpy(),
                                           batch["timestamps"][0], dataset.classes, post,
                                           actionness)
    return out


class TalTask(Task):
    name = "tal"
    title = "weakly supervised temporal action localization"
    methods = METHODS
    dataset_class = TalDataset
    sections: ClassVar[dict[str, type]] = {"post": PostprocessConfig, "eval": TalEvalConfig}
    metric = "average_mAP"
    headline = ("average_mAP", "mAP@0.5")
    eval_needs = ("segments",)

    def dataset(self, store: Any, manifest: Manifest, video_ids: Sequence[str], config: Any, *,
                needs: Sequence[str] = (), training: bool = False, seed: int = 0,
                cache: bool | dict = True) -> StoreDataset:
        if config.post.actionness_thresholds and config.method not in ACTIONNESS_METHODS:
            raise ConfigError(f"post.actionness_thresholds: {config.method} has no actionness "
                              f"sequence; only {', '.join(ACTIONNESS_METHODS)} do (set it to [])")
        return super().dataset(store, manifest, video_ids, config, needs=needs,
                               training=training, seed=seed, cache=cache)

    def predict(self, model: TaskModel, dataset: StoreDataset, config: Any, *,
                device: str = "cpu", progress: bool = False) -> dict[str, list[Detection]]:
        return predict_videos(model, dataset, config.post, device, progress)

    def evaluate(self, predictions: dict[str, list[Detection]], dataset: StoreDataset,
                 config: Any) -> dict[str, Any]:
        from downstream.metrics.detection import evaluate_detection

        gt = ground_truth(dataset.manifest, [v.video_id for v in dataset.videos])
        metrics = evaluate_detection(gt, predictions, config.eval.tiou,
                                     classes=list(dataset.classes))
        return {**metrics, **{f"mAP@{t:g}": float(m)
                              for t, m in zip(config.eval.tiou, metrics["mAP"])}}

    def write(self, predictions: dict[str, list[Detection]], dataset: StoreDataset, out: Path,
              *, source: str) -> Path:
        """``{"results": {video: [{"label", "score", "segment": [s, e]}]}}`` (ActivityNet)."""
        results = {video: [{"label": label, "score": score, "segment": [start, end]}
                           for label, score, start, end in found]
                   for video, found in predictions.items()}
        payload = {"version": "weakfeat-tal", "results": results,
                   "external_data": {"used": False, "details": f"features of {source}"}}
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json_text.dumps(payload, indent=1) + "\n")
        return out


TASK = TalTask()
