"""Pure clip transforms on (C, T, H, W) tensors, and `prepare_clip` for a backbone's InputSpec.

Conventions follow SlowFast / pytorchvideo: the short side is resized with bilinear
interpolation (long side floored), crops are offset by ``ceil((L - size) / 2)`` when centred,
and testing uses three crops along the long side (SlowFast's ``uniform_crop``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from extract.backbones.base import InputSpec


def _check_clip(clip: torch.Tensor, name: str) -> None:
    if clip.ndim != 4:
        raise ValueError(f"{name}: expected a (C, T, H, W) clip, got shape {tuple(clip.shape)}")


def to_float01(clip: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [0, 1]. (C, T, H, W) -> same shape."""
    _check_clip(clip, "to_float01")
    if clip.dtype != torch.uint8:
        raise TypeError(f"to_float01: expected a uint8 clip, got {clip.dtype}")
    return clip.float() / 255.0


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize so that min(H, W) == size; the long side is floor(long * size / short).

    (C, T, H, W) float -> (C, T, H', W').
    """
    _check_clip(clip, "resize_short_side")
    if size <= 0:
        raise ValueError(f"resize_short_side: size must be positive, got {size}")
    _, _, h, w = clip.shape
    if h <= w:
        new_h, new_w = size, math.floor(w * size / h)
    else:
        new_h, new_w = math.floor(h * size / w), size
    if (new_h, new_w) == (h, w):
        return clip
    frames = clip.permute(1, 0, 2, 3)  # (T, C, H, W): frames are the batch
    frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False)
    return frames.permute(1, 0, 2, 3).contiguous()


def _crop(clip: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return clip[:, :, top:top + size, left:left + size]


def _check_crop(clip: torch.Tensor, size: int, name: str) -> None:
    _check_clip(clip, name)
    h, w = clip.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"{name}: crop size {size} is larger than the frame {h}x{w}")


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Square crop of side `size` at the centre. (C, T, H, W) -> (C, T, size, size)."""
    _check_crop(clip, size, "center_crop")
    h, w = clip.shape[-2:]
    return _crop(clip, math.ceil((h - size) / 2), math.ceil((w - size) / 2), size)


def random_crop(clip: torch.Tensor, size: int, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Square crop of side `size` at a position drawn uniformly from `generator`."""
    _check_crop(clip, size, "random_crop")
    h, w = clip.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return _crop(clip, top, left, size)


def three_crops(clip: torch.Tensor, size: int) -> list[torch.Tensor]:
    """SlowFast's 3-crop testing: crops at the start, centre and end of the long side.

    Landscape frames give left / centre / right, portrait frames top / centre / bottom; the
    other axis is centred. Resize the short side to `size` first to cover the whole frame.
    """
    _check_crop(clip, size, "three_crops")
    h, w = clip.shape[-2:]
    crops = []
    if w >= h:
        top = math.ceil((h - size) / 2)
        for left in (0, math.ceil((w - size) / 2), w - size):
            crops.append(_crop(clip, top, left, size))
    else:
        left = math.ceil((w - size) / 2)
        for top in (0, math.ceil((h - size) / 2), h - size):
            crops.append(_crop(clip, top, left, size))
    return crops


def horizontal_flip(clip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right. (C, T, H, W) -> same shape."""
    _check_clip(clip, "horizontal_flip")
    return clip.flip(-1)


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(clip - mean) / std per channel. (C, T, H, W) float -> same shape."""
    _check_clip(clip, "normalize")
    if len(mean) != clip.shape[0] or len(std) != clip.shape[0]:
        raise ValueError(f"normalize: {clip.shape[0]} channels but mean {tuple(mean)} "
                         f"and std {tuple(std)}")
    mean_t = torch.as_tensor(mean, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)
    std_t = torch.as_tensor(std, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)
    return (clip - mean_t) / std_t


def temporal_subsample(clip: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Pick `num_samples` frames evenly spaced from first to last (indices truncated, as
    pytorchvideo's ``uniform_temporal_subsample``). (C, T, H, W) -> (C, num_samples, H, W)."""
    _check_clip(clip, "temporal_subsample")
    t = clip.shape[1]
    if num_samples <= 0 or t == 0:
        raise ValueError(f"temporal_subsample: {num_samples} samples from {t} frames")
    indices = torch.linspace(0, t - 1, num_samples).clamp(0, t - 1).long()
    return clip.index_select(1, indices.to(clip.device))


def prepare_clip(clip_uint8: torch.Tensor, spec: InputSpec, *, train: bool, flip: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoded frames -> the backbone's normalized input. (C, T, H, W) uint8 -> float.

    Scales to [0, 1], resizes the short side to ``spec.short_side``, crops ``spec.crop_size``
    (train: random crop and, if ``flip``, a random horizontal flip drawn from `generator`;
    test: centre crop) and normalizes with ``spec.mean`` / ``spec.std``. Turn ``flip`` off when
    classes are direction-sensitive (left vs right, clockwise vs counter-clockwise). The number of frames is left as
    is: read ``spec.num_frames`` frames ``spec.frame_stride`` apart before calling this.
    """
    clip = resize_short_side(to_float01(clip_uint8), spec.short_side)
    if train:
        clip = random_crop(clip, spec.crop_size, generator)
        if flip and float(torch.rand((), generator=generator)) < 0.5:
            clip = horizontal_flip(clip)
    else:
        clip = center_crop(clip, spec.crop_size)
    return normalize(clip, spec.mean, spec.std)
