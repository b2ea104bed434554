"""The complex activity recognition task: per video, scores of its unit actions (multi-label) and
of its complex activity (single-label); Charades submission files; Charades mAP and accuracy.

Metrics (``car_metrics``): ``mAP``, ``wAP``, ``mAP_nanmean`` and ``ap_per_class`` exactly as
``weakfeat downstream evaluate cls`` gives them on the written file (Charades_v1_classify.m
semantics, ``downstream.metrics.classification``), and ``activity_acc``, the fraction of videos
whose highest-scoring activity is theirs.

Checkpoints are selected on ``mAP_nanmean``, the mean AP over the classes that have a positive
video in the validation split. Charades' ``mAP`` is NaN as soon as one class has no positive
(its AP is 0/0), which happens on small validation splits (Breakfast's held-out 20% of split 1
train, or a synthetic split with rare classes): a NaN score never selects a checkpoint, so the
run would silently fall back to its last epoch. Where every class has a positive the two are
equal; results tables report both (``headline``), ``mAP`` being the number Table 4 of the
AdaptFocus paper and Charades' script give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.run_folder import atomic_write_text
from data_manifests.schema import Manifest, VideoRecord
from downstream.car import METHODS
from downstream.data.car import CarDataset
from downstream.data.store_dataset import StoreDataset
from downstream.metrics.classification import multilabel_map, score_matrix
from downstream.task import Task, TaskModel


@dataclass(frozen=True)
class CarPrediction:
    actions: np.ndarray  # (K,) float64 logits of the unit actions (Charades scores: any real)
    activity: np.ndarray  # (A,) float64 probabilities of the activities (softmax)


def activity_path(out: Path) -> Path:
    """The activity scores written next to a Charades file: ``pred.txt`` -> ``pred.activity.txt``."""
    return out.with_name(f"{out.stem}.activity{out.suffix}")


def car_metrics(predictions: dict[str, CarPrediction], videos: Sequence[VideoRecord],
                classes: Sequence[str], activities: Sequence[str]) -> dict[str, Any]:
    """Charades mAP of the action scores of ``videos`` (those without labels excluded, missing
    predictions ranked last, as ``evaluate cls``) and the activity accuracy over the videos that
    have an activity (NaN when none has)."""
    labels = {v.video_id: set(v.labels) for v in videos}
    scores = {video: p.actions for video, p in predictions.items()}
    matrix, targets, kept = score_matrix(labels, scores, classes)
    result: dict[str, Any] = (multilabel_map(matrix, targets) if kept else
                              {"mAP": math.nan, "wAP": math.nan, "mAP_nanmean": math.nan,
                               "ap_per_class": [math.nan] * len(classes)})
    # NaN entries would make metrics.jsonl invalid JSON; None keeps the list out of the log.
    result["ap_per_class"] = [None if math.isnan(ap) else ap for ap in result["ap_per_class"]]
    index = {name: i for i, name in enumerate(activities)}
    judged = [v for v in videos if v.activity is not None and v.video_id in predictions]
    hits = [int(np.argmax(predictions[v.video_id].activity)) == index[v.activity]
            for v in judged]
    result["activity_acc"] = float(np.mean(hits)) if hits else math.nan
    result.update(num_videos=len(kept), num_activity_videos=len(judged))
    return result


class CarTask(Task):
    name = "car"
    title = "complex activity recognition"
    methods = METHODS
    dataset_class = CarDataset
    metric = "mAP_nanmean"
    headline = ("mAP_nanmean", "mAP", "activity_acc")
    eval_needs = ("labels", "activity")

    def model_args(self, train_set: StoreDataset) -> dict[str, Any]:
        return {"feature_dim": train_set.dim, "num_classes": len(train_set.classes),
                "num_activities": len(train_set.manifest.meta.activities)}

    def signature(self, manifest: Manifest) -> dict[str, Any]:
        return {"classes": list(manifest.classes),
                "activities": list(manifest.meta.activities)}

    @torch.no_grad()
    def predict(self, model: TaskModel, dataset: StoreDataset, config: Any, *,
                device: str = "cpu", progress: bool = False) -> dict[str, CarPrediction]:
        """Video -> action logits and activity probabilities of the whole video."""
        model.eval()
        out = {}
        for index in tqdm(range(len(dataset)), desc="predict", disable=not progress,
                          leave=False):
            batch = dataset.collate([dataset[index]])
            actions, activity = model.classify(batch["features"].to(device),
                                               batch["mask"].to(device))
            out[batch["video_id"][0]] = CarPrediction(
                actions[0].double().cpu().numpy(),
                activity[0].double().softmax(dim=-1).cpu().numpy())
        return out

    def evaluate(self, predictions: dict[str, CarPrediction], dataset: StoreDataset,
                 config: Any) -> dict[str, Any]:
        return car_metrics(predictions, dataset.videos, dataset.classes,
                           dataset.manifest.meta.activities)

    def write(self, predictions: dict[str, CarPrediction], dataset: StoreDataset, out: Path,
              *, source: str) -> Path:
        """The Charades submission ``out``: ``<video_id> <score_1> ... <score_K>`` per line,
        scores in the manifest's class order (``weakfeat downstream evaluate cls -g MANIFEST
        -p out`` reads it); and next to it (``activity_path``) the same layout with one
        probability per activity, in the order of the manifest's ``activities``."""
        def lines(rows: dict[str, np.ndarray]) -> str:
            return "".join(f"{video} " + " ".join(f"{value:.8g}" for value in row) + "\n"
                           for video, row in rows.items())

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, lines({v: p.actions for v, p in predictions.items()}))
        atomic_write_text(activity_path(out),
                          lines({v: p.activity for v, p in predictions.items()}))
        return out


TASK = CarTask()
