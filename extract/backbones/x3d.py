"""X3D (Feichtenhofer, CVPR 2020) built with pytorchvideo, plus a CPU-sized `x3d-tiny`.

Features are the output of X3D's projected pool (conv5 1x1x1, BN, ReLU, global average
pool, the 2048-d 1x1x1 "lin_5" projection, ReLU), taken before the classifier. The pool is
adaptive, so any input size works; pytorchvideo's fixed-kernel pool only fits one size.
"""

from __future__ import annotations

import torch
from torch import nn

import extract.pytorchvideo_compat  # noqa: F401  (torchvision stand-ins first)

# isort: split
from pytorchvideo.models.x3d import create_x3d

from extract.backbones.base import InputSpec, VideoBackbone

HUB_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"


class X3D(VideoBackbone):
    """pytorchvideo's X3D trunk with an adaptive projected pool and a linear head."""

    def __init__(self, *, net: nn.Module, num_classes: int, input_spec: InputSpec,
                 dropout: float, kinetics400_url: str | None = None) -> None:
        blocks = list(net.blocks)
        projected_pool = blocks[-1].pool
        projected_pool.pool = nn.AdaptiveAvgPool3d(1)
        super().__init__(feature_dim=projected_pool.post_conv.out_channels,
                         num_classes=num_classes, input_spec=input_spec, dropout=dropout)
        self.blocks = nn.ModuleList(blocks[:-1])
        self.pool = projected_pool
        self.kinetics400_url = kinetics400_url
        self._head_index = len(blocks) - 1

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        for block in self.blocks:
            x = block(x)
        return self.pool(x).flatten(1)  # (B, D, 1, 1, 1) -> (B, D)

    def convert_pretrained_key(self, key: str) -> str:
        # pytorchvideo keeps the projected pool and classifier in its last block.
        head = f"blocks.{self._head_index}."
        if key.startswith(head + "pool."):
            return "pool." + key.removeprefix(head + "pool.")
        if key.startswith(head + "proj."):
            return "head." + key.removeprefix(head + "proj.")
        return key


# inner_act: nn.SiLU is pytorchvideo's Swish (x * sigmoid(x)) without its deprecated autograd.
def _x3d(*, num_classes: int, input_spec: InputSpec, dropout: float, crop_size: int,
         clip_length: int, kinetics400_url: str | None, **kwargs) -> X3D:
    net = create_x3d(input_clip_length=clip_length, input_crop_size=crop_size,
                     model_num_class=num_classes, dropout_rate=0.0,
                     head_activation=None, inner_act=nn.SiLU, **kwargs)
    return X3D(net=net, num_classes=num_classes, input_spec=input_spec, dropout=dropout,
               kinetics400_url=kinetics400_url)


# Input specs: pytorchvideo model-zoo clip lengths and strides (XS 4x12, S 13x6, M 16x5),
# training crop sizes, test short sides (182 / 182 / 256 / 356); X3D-L uses AdaptFocus
# Table 1's 32x3 (pytorchvideo's is 16x5).
def build_x3d_xs(*, num_classes: int, dropout: float = 0.5) -> X3D:
    spec = InputSpec(num_frames=4, frame_stride=12, crop_size=160, short_side=182)
    return _x3d(num_classes=num_classes, input_spec=spec, dropout=dropout, crop_size=160,
                clip_length=4, kinetics400_url=f"{HUB_ROOT}/X3D_XS.pyth")


def build_x3d_s(*, num_classes: int, dropout: float = 0.5) -> X3D:
    spec = InputSpec(num_frames=13, frame_stride=6, crop_size=160, short_side=182)
    return _x3d(num_classes=num_classes, input_spec=spec, dropout=dropout, crop_size=160,
                clip_length=13, kinetics400_url=f"{HUB_ROOT}/X3D_S.pyth")


def build_x3d_m(*, num_classes: int, dropout: float = 0.5) -> X3D:
    spec = InputSpec(num_frames=16, frame_stride=5, crop_size=224, short_side=256)
    return _x3d(num_classes=num_classes, input_spec=spec, dropout=dropout, crop_size=224,
                clip_length=16, kinetics400_url=f"{HUB_ROOT}/X3D_M.pyth")


def build_x3d_l(*, num_classes: int, dropout: float = 0.5) -> X3D:
    spec = InputSpec(num_frames=32, frame_stride=3, crop_size=312, short_side=356)
    return _x3d(num_classes=num_classes, input_spec=spec, dropout=dropout, crop_size=312,
                clip_length=16, depth_factor=5.0, kinetics400_url=f"{HUB_ROOT}/X3D_L.pyth")


def build_x3d_tiny(*, num_classes: int, dropout: float = 0.0) -> X3D:
    """A narrow, shallow X3D for 8 frames of 32x32 px (tests, the CPU demo); no weights."""
    spec = InputSpec(num_frames=8, frame_stride=2, crop_size=32, short_side=32)
    return _x3d(num_classes=num_classes, input_spec=spec, dropout=dropout, crop_size=32,
                clip_length=8, kinetics400_url=None, width_factor=1.0, depth_factor=1.0,
                stem_dim_in=8, head_dim_out=128)
