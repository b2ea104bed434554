"""The uniform backbone API: pooled features (B, D), a replaceable linear head, an InputSpec.

Every backbone takes one normalized clip tensor (B, C, T, H, W); models with several
pathways (SlowFast) split it internally.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

# pytorchvideo / SlowFast Kinetics normalization, for pixels scaled to [0, 1].
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What one input clip of a backbone looks like."""

    num_frames: int  # F: frames per clip
    frame_stride: int  # tau: distance between sampled frames, in frames of the source video
    crop_size: int  # side of the square crop fed to the model, pixels
    short_side: int  # the short side is resized to this before cropping, pixels
    mean: tuple[float, float, float] = KINETICS_MEAN  # per channel, pixels scaled to [0, 1]
    std: tuple[float, float, float] = KINETICS_STD  # per channel, pixels scaled to [0, 1]


class VideoBackbone(nn.Module):
    """Base class: subclasses build their trunk and implement `forward_features`.

    The classifier is ``self.head`` (an ``nn.Linear(feature_dim, K)``) after ``self.dropout``;
    pretrained loading treats every ``head.*`` weight as replaceable.
    """

    feature_dim: int
    input_spec: InputSpec
    # URL of the Kinetics-400 checkpoint for `pretrained="kinetics400"`, if there is one.
    kinetics400_url: str | None = None

    def __init__(self, *, feature_dim: int, num_classes: int, input_spec: InputSpec,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.feature_dim = feature_dim
        self.input_spec = input_spec
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = _new_head(feature_dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) normalized float -> (B, D) globally pooled features."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K) logits."""
        return self.head(self.dropout(features))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, K) logits."""
        return self.forward_head(self.forward_features(clips))

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with `num_classes` outputs."""
        device = self.head.weight.device
        self.head = _new_head(self.feature_dim, num_classes).to(device)

    def convert_pretrained_key(self, key: str) -> str:
        """Map a key of an external checkpoint (e.g. pytorchvideo's) to this module's key."""
        return key

    def kinetics400_state_dict(self) -> dict[str, torch.Tensor]:
        """Kinetics-400 weights for `pretrained="kinetics400"`; see extract/backbones/pretrained.py."""
        from extract.backbones.pretrained import PretrainedWeightsError, fetch_hub_state_dict

        if self.kinetics400_url is None:
            raise PretrainedWeightsError(
                f"{type(self).__name__} has no Kinetics-400 checkpoint; "
                "pass a local checkpoint path instead")
        return fetch_hub_state_dict(self.kinetics400_url)


def _new_head(feature_dim: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(feature_dim, num_classes)
    # pytorchvideo's init for the projection: small normal weights, zero bias.
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    return head


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the state_dict (names, dtypes, shapes and values, in key order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
