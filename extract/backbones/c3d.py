"""`c3d-tiny`: a plain 3D CNN (C3D-style, Tran et al. ICCV 2015) sized for 32 px CPU runs.

Four 3x3x3 conv-BN-ReLU blocks, then a global average pool. Why it exists beside x3d-tiny:
at 32 px X3D's five stride-2 stages reduce a frame to 1x1 and its depthwise temporal
convolutions learned no motion in a CPU budget (source-preset test accuracy stayed at chance
after 400 steps of 16 clips), while this network, which keeps 32x32 in its first block and
convolves space and time jointly, reached 65% on the same 14 classes in the same steps
(see docs/stage1.md, the tiny backbone). It has no pretrained weights: pre-train it on the
`source` preset.
"""

from __future__ import annotations

import torch
from torch import nn

from extract.backbones.base import InputSpec, VideoBackbone


def _block(dim_in: int, dim_out: int, stride: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(dim_in, dim_out, kernel_size=3, stride=stride, padding=1,
                                   bias=False),
                         nn.BatchNorm3d(dim_out), nn.ReLU(inplace=True))


class C3D(VideoBackbone):
    """(B, 3, T, H, W) -> four conv blocks (space /8, time /4) -> mean pool -> (B, 4 * width)."""

    def __init__(self, *, num_classes: int, input_spec: InputSpec, width: int,
                 dropout: float) -> None:
        super().__init__(feature_dim=4 * width, num_classes=num_classes, input_spec=input_spec,
                         dropout=dropout)
        self.blocks = nn.Sequential(
            _block(3, width, (1, 1, 1)),  # full resolution: the 32 px actors stay ~7 px wide
            _block(width, 2 * width, (1, 2, 2)),
            _block(2 * width, 4 * width, (2, 2, 2)),
            _block(4 * width, 4 * width, (2, 2, 2)))

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        return self.blocks(clips).mean(dim=(2, 3, 4))


def build_c3d_tiny(*, num_classes: int, dropout: float = 0.0) -> C3D:
    """8 frames, stride 2, 32x32 px; 96-d features, about 0.4 M parameters; no weights."""
    spec = InputSpec(num_frames=8, frame_stride=2, crop_size=32, short_side=32)
    return C3D(num_classes=num_classes, input_spec=spec, width=24, dropout=dropout)
