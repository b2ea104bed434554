"""The grounding task: one item per sentence, ranked moments per sentence, R@n at IoU m and
mIoU with MMN's evaluation semantics, the JSON list that `downstream evaluate tsg` reads.

Validation selects on R@1,IoU=0.5. The vocabulary of the training sentences is a builder
argument (``model_args``), so every checkpoint carries it. Grounding always reads whole videos:
``data.max_snippets`` must be 0 (every method's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from data_manifests import json_text
from data_manifests.config import ConfigError
from data_manifests.run_folder import atomic_write_text
from data_manifests.schema import Manifest
from downstream.data.store_dataset import DataError, StoreDataset
from downstream.data.tsg import TsgDataset
from downstream.metrics.grounding import mean_iou, nms_indices, recall_at_iou
from downstream.task import Task, TaskModel
from downstream.tsg import METHODS
from downstream.tsg.base import Moment
from downstream.tsg.text import Vocabulary

RECALL = (1, 5)  # R@n of Charades-STA (MMN, D3G, CPL)
IOU = (0.5, 0.7)  # IoU thresholds of Charades-STA


@dataclass(frozen=True)
class TsgPostConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"batch_size"})
    # Greedy NMS of each sentence's ranked moments (MMN's TEST.NMS_THRESH, also applied when
    # scoring); 1 keeps every moment (CPL's protocol).
    nms_threshold: float = 0.5
    max_moments: int = 0  # moments written per sentence after NMS (0: all)
    batch_size: int = 32  # sentences per forward pass when predicting

    def __post_init__(self) -> None:
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise ValueError(f"post.nms_threshold={self.nms_threshold} must lie in [0, 1]")
        if self.max_moments < 0 or self.batch_size < 1:
            raise ValueError("post.max_moments must be >= 0 and post.batch_size >= 1")


def ground_truth(dataset: StoreDataset) -> dict[tuple[str, int], tuple[float, float, float]]:
    """``{(video, sentence index): (duration, start, end)}`` of every item of ``dataset``."""
    out = {}
    for video_id, k in dataset.keys:
        video = dataset.records[video_id]
        sentence = video.sentences[k]
        if sentence.start is None or sentence.end is None:
            raise DataError(f"manifest {dataset.manifest.root}: video {video_id!r} sentence {k} "
                            f"({sentence.text!r}) has no moment; grounding is evaluated "
                            "against sentence moments")
        out[(video_id, k)] = (video.duration, float(sentence.start), float(sentence.end))
    return out


class TsgTask(Task):
    name = "tsg"
    title = "temporal sentence grounding"
    methods = METHODS
    dataset_class = TsgDataset
    sections: ClassVar[dict[str, type]] = {"post": TsgPostConfig}
    metric = "R@1,IoU=0.5"
    headline = ("R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "R@5,IoU=0.7", "mIoU")
    eval_needs = ("sentences", "moments")

    def dataset(self, store: Any, manifest: Manifest, video_ids: Sequence[str], config: Any, *,
                needs: Sequence[str] = (), training: bool = False, seed: int = 0,
                cache: bool | dict = True) -> StoreDataset:
        """Whole videos; the supervision level of the items follows ``needs``."""
        for key in ("max_snippets", "resample"):
            if getattr(config.data, key):
                raise ConfigError(f"data.{key}={getattr(config.data, key)}: grounding reads "
                                  "whole videos (the moment map spans the video); set it to 0")
        return TsgDataset(store, manifest, video_ids, needs=needs, seed=seed, cache=cache,
                          who=f"{self.name} {config.method}", missing=config.data.missing)

    def model_args(self, train_set: StoreDataset) -> dict[str, Any]:
        texts = [s.text for video in train_set.videos for s in video.sentences or ()]
        return {"feature_dim": train_set.dim, "vocab": list(Vocabulary.build(texts).words)}

    def signature(self, manifest: Manifest) -> dict[str, Any]:
        return {}  # sentences, not classes: any manifest can be grounded

    @torch.no_grad()
    def predict(self, model: TaskModel, dataset: StoreDataset, config: Any, *,
                device: str = "cpu", progress: bool = False
                ) -> dict[tuple[str, int], list[Moment]]:
        """(video, sentence index) -> moments (start s, end s, score), best first, after NMS.

        Consecutive items (the sentences of one video) share a batch, so a video's map is
        computed once per batch."""
        model.eval()
        post = config.post
        out = {}
        size = post.batch_size
        for first in tqdm(range(0, len(dataset), size), desc="predict", disable=not progress,
                          leave=False):
            items = [dataset[i] for i in range(first, min(first + size, len(dataset)))]
            batch = dataset.collate(items)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            for key, moments in zip(batch["key"], model.ground(batch)):
                out[key] = suppress(moments, post.nms_threshold, post.max_moments)
        return out

    def evaluate(self, predictions: dict[Any, list[Moment]], dataset: StoreDataset,
                 config: Any) -> dict[str, Any]:
        gt = ground_truth(dataset)
        metrics = recall_at_iou(gt, predictions, recall=RECALL, iou=IOU,
                                nms_threshold=config.post.nms_threshold)
        return {**metrics, "mIoU": mean_iou(gt, predictions)}

    def write(self, predictions: dict[Any, list[Moment]], dataset: StoreDataset, out: Path, *,
              source: str) -> Path:
        """``[{"video", "sentence_index", "sentence", "moments": [[start, end, score], ...]}]``
        (seconds, best first): what `downstream evaluate tsg` reads."""
        rows = [{"video": video_id, "sentence_index": k,
                 "sentence": dataset.records[video_id].sentences[k].text,
                 "moments": [[round(s, 4), round(e, 4), score] for s, e, score in moments]}
                for (video_id, k), moments in predictions.items()]
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json_text.dumps(rows, indent=1) + "\n")
        return out


def suppress(moments: list[Moment], threshold: float, limit: int) -> list[Moment]:
    """Greedy NMS of ``moments`` (MMN's; a threshold of 1 keeps all), best first; ``limit`` > 0
    keeps that many."""
    if threshold < 1.0 and moments:
        array = np.asarray(moments, dtype=np.float64)
        moments = [moments[i] for i in nms_indices(array[:, :2], array[:, 2], threshold)]
    return moments[:limit] if limit else moments


TASK = TsgTask()
