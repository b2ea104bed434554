"""The segmentation task: a class per step, predictions as MS-TCN label files at each video's
frame rate, scored like MS-TCN's ``eval.py`` (validation selects on frame accuracy, MoF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.run_folder import atomic_write_text
from downstream.data.seg import BACKGROUND, SegDataset, frame_label_names
from downstream.data.store_dataset import StoreDataset
from downstream.seg import METHODS
from downstream.task import Task, TaskModel


def steps_to_frames(step_labels: np.ndarray, timestamps: np.ndarray, num_frames: int,
                    fps: float) -> np.ndarray:
    """Labels ``(T,)`` at clip centres ``timestamps (T,)`` -> labels of the video's frames
    ``(num_frames,)``: each frame (at i / fps) takes the label of the nearest clip centre."""
    times = np.arange(num_frames) / fps
    midpoints = (timestamps[1:] + timestamps[:-1]) / 2
    return step_labels[np.searchsorted(midpoints, times)]


class SegTask(Task):
    name = "seg"
    title = "temporal action segmentation"
    methods = METHODS
    dataset_class = SegDataset
    metric = "Acc"
    headline = ("Acc", "Edit", "F1@10", "F1@25", "F1@50")
    eval_needs = ("segments",)

    @torch.no_grad()
    def predict(self, model: TaskModel, dataset: StoreDataset, config: Any, *,
                device: str = "cpu", progress: bool = False) -> dict[str, list[str]]:
        """Video -> one label per frame of the video (its fps and frame count)."""
        model.eval()
        names = [*dataset.classes, BACKGROUND]
        out = {}
        for index in tqdm(range(len(dataset)), desc="predict", disable=not progress,
                          leave=False):
            batch = dataset.collate([dataset[index]])
            scores = model.segment(batch["features"].to(device), batch["mask"].to(device))
            steps = scores[0].argmax(dim=-1).cpu().numpy()  # (T,)
            video = dataset.records[batch["video_id"][0]]
            frames = steps_to_frames(steps, batch["timestamps"][0], video.num_frames, video.fps)
            out[video.video_id] = [names[i] for i in frames]
        return out

    def evaluate(self, predictions: dict[str, list[str]], dataset: StoreDataset,
                 config: Any) -> dict[str, Any]:
        from downstream.metrics.segmentation import evaluate_segmentation

        gt = {v.video_id: frame_label_names(v, dataset.classes) for v in dataset.videos}
        return evaluate_segmentation(gt, predictions, background=(BACKGROUND,))

    def write(self, predictions: dict[str, list[str]], dataset: StoreDataset, out: Path, *,
              source: str) -> Path:
        """A folder of ``<video>.txt`` files, one frame label per line (MS-TCN's layout)."""
        out.mkdir(parents=True, exist_ok=True)
        for video, labels in predictions.items():
            atomic_write_text(out / f"{video}.txt", "\n".join(labels) + "\n")
        return out


TASK = SegTask()
