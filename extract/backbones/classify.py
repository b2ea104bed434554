"""Classify one short video with a backbone: the check that ported weights are right."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from data_manifests.video_reader import probe_video, read_frames
from extract.backbones import build_backbone
from extract.transforms import center_crop, normalize, resize_short_side, to_float01

log = logging.getLogger(__name__)

KINETICS400_LABELS = Path(__file__).with_name("kinetics400_labels.txt")
KINETICS400_CLASSES = 400


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in logit order (DeepMind's label_map.txt)."""
    lines = KINETICS400_LABELS.read_text(encoding="utf-8").splitlines()
    labels = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert len(labels) == KINETICS400_CLASSES, f"{KINETICS400_LABELS}: {len(labels)} labels"
    return labels


def classify_video(video: str | Path, *, backbone: str, pretrained: str | Path,
                   num_classes: int = KINETICS400_CLASSES, topk: int = 5,
                   max_frames: int = 256) -> list[tuple[str, float]]:
    """Top-k (label, logit) of one centre view over the whole video.

    Frames: all of them, or `max_frames` evenly spaced ones for longer videos. Each frame's
    short side is resized to the backbone's crop size and the centre is cropped (a 224 px
    clip is used as is). Labels are Kinetics names for `num_classes` == 400, else indices.
    """
    info = probe_video(video)
    count = min(info.num_frames, max_frames)
    indices = torch.linspace(0, info.num_frames - 1, count).round().long().tolist()
    clip = read_frames(video, indices)  # (C, T, H, W) uint8
    model = build_backbone(backbone, num_classes=num_classes, pretrained=pretrained).eval()
    spec = model.input_spec
    clip = resize_short_side(to_float01(clip), spec.crop_size)
    clip = normalize(center_crop(clip, spec.crop_size), spec.mean, spec.std)
    log.info("classifying %s: %d frames of %dx%d", video, count, spec.crop_size, spec.crop_size)
    with torch.inference_mode():
        logits = model(clip.unsqueeze(0))[0]  # (K,)
    labels = (kinetics400_labels() if num_classes == KINETICS400_CLASSES
              else [str(i) for i in range(num_classes)])
    values, classes = logits.topk(min(topk, num_classes))
    return [(labels[int(c)], float(v)) for v, c in zip(values, classes)]
