"""ResNet50-I3D (pytorchvideo's i3d_r50) and Non-local I3D (Wang et al., CVPR 2018).

pytorchvideo 0.1.5 has no non-local block, so `NonLocal3d` is written here (embedded
Gaussian, as in the non-local paper and SlowFast's `nonlocal_helper`) and inserted after
res3 blocks 1, 3 and res4 blocks 1, 3, 5 (0-based; the paper's 5-block R50 setting).
Features: global average pool of the res5 output, (B, 2048).
"""

from __future__ import annotations

import torch
from torch import nn

import extract.pytorchvideo_compat  # noqa: F401  (torchvision stand-ins first)

# isort: split
from pytorchvideo.models.resnet import create_resnet

from extract.backbones.base import InputSpec, VideoBackbone

I3D_R50_URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth"
# AdaptFocus Table 1: ResNet50-I3D and Nonlocal-I3D use 32x3 clips; 224 crops of 256 frames.
I3D_R50_SPEC = InputSpec(num_frames=32, frame_stride=3, crop_size=224, short_side=256)
# (index into the trunk's blocks, res block indices) that get a non-local block after them.
NONLOCAL_AFTER = {3: (1, 3), 4: (1, 3, 5)}  # blocks: stem, res2, pool, res3, res4, res5


class NonLocal3d(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection. (B, C, T, H, W) -> same.

    Keys and values are max-pooled 2x2 in space (the paper's subsampling trick); the output
    BN starts at zero so the block is the identity at initialisation.
    """

    def __init__(self, *, dim: int, dim_inner: int | None = None) -> None:
        super().__init__()
        dim_inner = dim_inner or dim // 2
        self.scale = dim_inner ** -0.5
        self.theta = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.phi = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.g = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.pool = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2), ceil_mode=True)
        self.out = nn.Conv3d(dim_inner, dim, kernel_size=1)
        self.norm = nn.BatchNorm3d(dim)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        query = self.theta(x).flatten(2)  # (B, C', THW)
        key = self.phi(self.pool(x)).flatten(2)  # (B, C', N)
        value = self.g(self.pool(x)).flatten(2)  # (B, C', N)
        attention = torch.softmax(query.transpose(1, 2) @ key * self.scale, dim=-1)  # (B, THW, N)
        y = (value @ attention.transpose(1, 2)).view(b, -1, t, h, w)  # (B, C', T, H, W)
        return x + self.norm(self.out(y))


class ResNetI3D(VideoBackbone):
    """pytorchvideo's I3D ResNet trunk (no head), optional non-local blocks, linear head."""

    def __init__(self, *, num_classes: int, input_spec: InputSpec, dropout: float,
                 nonlocal_blocks: bool, kinetics400_url: str | None) -> None:
        super().__init__(feature_dim=2048, num_classes=num_classes, input_spec=input_spec,
                         dropout=dropout)
        net = create_resnet(
            model_depth=50, stem_conv_kernel_size=(5, 7, 7), stage1_pool=nn.MaxPool3d,
            stage_conv_a_kernel_size=((3, 1, 1), [(3, 1, 1), (1, 1, 1)],
                                      [(3, 1, 1), (1, 1, 1)], [(1, 1, 1), (3, 1, 1)]),
            head=None)
        self.blocks = net.blocks
        self.nonlocal_blocks = nn.ModuleDict()
        if nonlocal_blocks:
            for block_index, res_indices in NONLOCAL_AFTER.items():
                dim = self.blocks[block_index].res_blocks[0].branch2.conv_c.out_channels
                for res_index in res_indices:
                    self.nonlocal_blocks[f"{block_index}_{res_index}"] = NonLocal3d(dim=dim)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.kinetics400_url = kinetics400_url
        self._head_index = len(self.blocks)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        for block_index, block in enumerate(self.blocks):
            if block_index not in NONLOCAL_AFTER or not len(self.nonlocal_blocks):
                x = block(x)
                continue
            for res_index, res_block in enumerate(block.res_blocks):
                x = res_block(x)
                name = f"{block_index}_{res_index}"
                if name in self.nonlocal_blocks:
                    x = self.nonlocal_blocks[name](x)
        return self.pool(x).flatten(1)  # (B, 2048)

    def convert_pretrained_key(self, key: str) -> str:
        head = f"blocks.{self._head_index}.proj."
        return "head." + key.removeprefix(head) if key.startswith(head) else key


def build_i3d_r50(*, num_classes: int, dropout: float = 0.5) -> ResNetI3D:
    return ResNetI3D(num_classes=num_classes, input_spec=I3D_R50_SPEC, dropout=dropout,
                     nonlocal_blocks=False, kinetics400_url=I3D_R50_URL)


def build_i3d_nonlocal_r50(*, num_classes: int, dropout: float = 0.5) -> ResNetI3D:
    """I3D R50 with 5 non-local blocks. pytorchvideo's model zoo has no Kinetics checkpoint
    for it: `pretrained="kinetics400"` fails; pass a local checkpoint path."""
    return ResNetI3D(num_classes=num_classes, input_spec=I3D_R50_SPEC, dropout=dropout,
                     nonlocal_blocks=True, kinetics400_url=None)
