"""SlowFast-R50 (Feichtenhofer et al., ICCV 2019) built with pytorchvideo.

The backbone takes one (B, C, T, H, W) clip: the fast pathway sees all T frames, the slow
pathway T / alpha of them (evenly spaced, as pytorchvideo's PackPathway). Features are the
globally pooled slow and fast res5 outputs, concatenated: (B, 2048 + 256).
"""

from __future__ import annotations

import torch
from torch import nn

import extract.pytorchvideo_compat  # noqa: F401  (torchvision stand-ins first)

# isort: split
from pytorchvideo.models.slowfast import create_slowfast

from extract.backbones.base import InputSpec, VideoBackbone

SLOWFAST_R50_URL = (
    "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth")
ALPHA = 4  # fast / slow frame-rate ratio of SlowFast-R50
# AdaptFocus Table 1 lists SlowFast-R50 "16x8", SlowFast's name for a slow pathway of 16
# frames at stride 8 (SlowFast's Charades SLOWFAST_16x8 configs): the clip fed in is
# 64 frames at stride 2, of which the slow pathway takes every ALPHA-th.
SLOWFAST_R50_SPEC = InputSpec(num_frames=64, frame_stride=2, crop_size=224, short_side=256)


class SlowFast(VideoBackbone):
    """pytorchvideo's SlowFast trunk with adaptive pooling and a linear head."""

    def __init__(self, *, num_classes: int, input_spec: InputSpec, dropout: float,
                 kinetics400_url: str | None) -> None:
        super().__init__(feature_dim=2048 + 256, num_classes=num_classes,
                         input_spec=input_spec, dropout=dropout)
        net = create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1),
                              head=None, head_pool=nn.AdaptiveAvgPool3d,
                              head_output_size=((1, 1, 1), (1, 1, 1)))
        self.blocks = net.blocks  # the last block pools and concatenates both pathways
        self.kinetics400_url = kinetics400_url
        self._head_index = len(self.blocks)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        t = clips.shape[2]
        if t < ALPHA:
            raise ValueError(f"SlowFast needs at least {ALPHA} frames per clip, got {t}")
        slow_index = torch.linspace(0, t - 1, t // ALPHA, device=clips.device).long()
        x = [clips.index_select(2, slow_index), clips]  # [slow, fast]
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)  # (B, 2304, 1, 1, 1) -> (B, 2304)

    def convert_pretrained_key(self, key: str) -> str:
        head = f"blocks.{self._head_index}.proj."
        return "head." + key.removeprefix(head) if key.startswith(head) else key


def build_slowfast_r50(*, num_classes: int, dropout: float = 0.5) -> SlowFast:
    return SlowFast(num_classes=num_classes, input_spec=SLOWFAST_R50_SPEC, dropout=dropout,
                    kinetics400_url=SLOWFAST_R50_URL)
