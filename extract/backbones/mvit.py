"""MViT-B (Fan et al., ICCV 2021) built with pytorchvideo, plus a CPU-sized `mvit-tiny`.

MViT's positional embeddings fix the input size: clips must be exactly
``input_spec.num_frames`` x ``crop_size`` x ``crop_size``. Features are the final
layer-normed class token (pytorchvideo's "cls" sequence pool), (B, embed_dim).
"""

from __future__ import annotations

import torch

import extract.pytorchvideo_compat  # noqa: F401  (torchvision stand-ins first)

# isort: split
from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers

from extract.backbones.base import InputSpec, VideoBackbone

HUB_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
# pytorchvideo's mvit_base_16x4 / mvit_base_32x3 configuration (the MViT-B of the paper).
MVIT_B_CONFIG = {
    "embed_dim_mul": [[1, 2.0], [3, 2.0], [14, 2.0]],
    "atten_head_mul": [[1, 2.0], [3, 2.0], [14, 2.0]],
    "pool_q_stride_size": [[1, 1, 2, 2], [3, 1, 2, 2], [14, 1, 2, 2]],
    "pool_kv_stride_adaptive": [1, 8, 8],
    "pool_kvq_kernel": [3, 3, 3],
}


class MViT(VideoBackbone):
    """pytorchvideo's MViT without its head; submodule names match pytorchvideo's."""

    def __init__(self, *, num_classes: int, input_spec: InputSpec, dropout: float,
                 kinetics400_url: str | None, **config) -> None:
        net = create_multiscale_vision_transformers(
            spatial_size=input_spec.crop_size, temporal_size=input_spec.num_frames,
            head=None, **config)
        super().__init__(feature_dim=net.norm_embed.normalized_shape[0],
                         num_classes=num_classes, input_spec=input_spec, dropout=dropout)
        self.patch_embed = net.patch_embed
        self.cls_positional_encoding = net.cls_positional_encoding
        self.pos_drop = net.pos_drop
        self.norm_patch_embed = net.norm_patch_embed
        self.blocks = net.blocks
        self.norm_embed = net.norm_embed
        self.kinetics400_url = kinetics400_url

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        spec = self.input_spec
        expected = (spec.num_frames, spec.crop_size, spec.crop_size)
        if tuple(clips.shape[2:]) != expected:
            raise ValueError(f"MViT takes clips of exactly T, H, W = {expected} "
                             f"(fixed positional embeddings), got {tuple(clips.shape[2:])}")
        x = self.patch_embed(clips)  # (B, N, C)
        x = self.cls_positional_encoding(x)  # (B, 1 + N, C)
        if self.pos_drop is not None:
            x = self.pos_drop(x)
        if self.norm_patch_embed is not None:
            x = self.norm_patch_embed(x)
        thw = self.cls_positional_encoding.patch_embed_shape
        for block in self.blocks:
            x, thw = block(x, thw)
        return self.norm_embed(x)[:, 0]  # class token, (B, C)

    def convert_pretrained_key(self, key: str) -> str:
        return "head." + key.removeprefix("head.proj.") if key.startswith("head.proj.") else key


def build_mvit_b_16x4(*, num_classes: int, dropout: float = 0.5) -> MViT:
    spec = InputSpec(num_frames=16, frame_stride=4, crop_size=224, short_side=256)
    return MViT(num_classes=num_classes, input_spec=spec, dropout=dropout,
                kinetics400_url=f"{HUB_ROOT}/MVIT_B_16x4.pyth", droppath_rate_block=0.2,
                **MVIT_B_CONFIG)


def build_mvit_b_32x3(*, num_classes: int, dropout: float = 0.5) -> MViT:
    spec = InputSpec(num_frames=32, frame_stride=3, crop_size=224, short_side=256)
    return MViT(num_classes=num_classes, input_spec=spec, dropout=dropout,
                kinetics400_url=f"{HUB_ROOT}/MVIT_B_32x3_f294077834.pyth",
                droppath_rate_block=0.2, **MVIT_B_CONFIG)


def build_mvit_tiny(*, num_classes: int, dropout: float = 0.0) -> MViT:
    """A 4-block, 32-dim MViT for 8 frames of 32x32 px (tests, the CPU demo); no weights."""
    spec = InputSpec(num_frames=8, frame_stride=2, crop_size=32, short_side=32)
    return MViT(num_classes=num_classes, input_spec=spec, dropout=dropout,
                kinetics400_url=None, depth=4, patch_embed_dim=32, num_heads=1,
                mlp_ratio=2.0, embed_dim_mul=[[1, 2.0], [3, 2.0]],
                atten_head_mul=[[1, 2.0], [3, 2.0]],
                pool_q_stride_size=[[1, 1, 2, 2], [3, 1, 2, 2]],
                pool_kv_stride_adaptive=[1, 4, 4], pool_kvq_kernel=[3, 3, 3])
