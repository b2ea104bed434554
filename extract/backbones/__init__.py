"""Video backbones: one name -> builder dict, and `build_backbone`.

Every backbone is a `VideoBackbone`: (B, C, T, H, W) normalized clips -> (B, D) pooled
features -> (B, K) logits, with the `InputSpec` its clips should have.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import extract.pytorchvideo_compat  # noqa: F401  (must run before any pytorchvideo import)
from data_manifests.errors import UserError

# isort: split
from extract.backbones.base import InputSpec, VideoBackbone, weights_sha256
from extract.backbones.c3d import build_c3d_tiny
from extract.backbones.inception_i3d import build_i3d_inception
from extract.backbones.mvit import build_mvit_b_16x4, build_mvit_b_32x3, build_mvit_tiny
from extract.backbones.pretrained import PretrainedWeightsError, load_pretrained
from extract.backbones.resnet_i3d import build_i3d_nonlocal_r50, build_i3d_r50
from extract.backbones.slowfast import build_slowfast_r50
from extract.backbones.x3d import (
    build_x3d_l,
    build_x3d_m,
    build_x3d_s,
    build_x3d_tiny,
    build_x3d_xs,
)

BACKBONES: dict[str, Callable[..., VideoBackbone]] = {
    "c3d-tiny": build_c3d_tiny,
    "x3d-tiny": build_x3d_tiny,
    "x3d-xs": build_x3d_xs,
    "x3d-s": build_x3d_s,
    "x3d-m": build_x3d_m,
    "x3d-l": build_x3d_l,
    "i3d-inception": build_i3d_inception,
    "i3d-r50": build_i3d_r50,
    "i3d-nonlocal-r50": build_i3d_nonlocal_r50,
    "slowfast-r50": build_slowfast_r50,
    "mvit-tiny": build_mvit_tiny,
    "mvit-b-16x4": build_mvit_b_16x4,
    "mvit-b-32x3": build_mvit_b_32x3,
}


def build_backbone(name: str, *, num_classes: int,
                   pretrained: str | Path | None = None) -> VideoBackbone:
    """Build backbone `name` with a `num_classes`-way head.

    `pretrained`: None (random init), "kinetics400", or a checkpoint path (a raw state_dict
    or {"model": state_dict}); head weights whose shape differs are dropped.
    """
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    model = BACKBONES[name](num_classes=num_classes)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


__all__ = ["BACKBONES", "InputSpec", "PretrainedWeightsError", "VideoBackbone",
           "build_backbone", "weights_sha256"]
