"""Timeception (Hussein, Gavves and Smeulders, "Timeception for Complex Action Recognition",
CVPR 2019), on the clip sequence of a feature store.

Read from the official code (github.com/noureldien/timeception: ``nets/timeception.py``,
``nets/layers_pytorch.py``, ``experiments/train_{keras,pytorch}.py``, ``configs/*.yaml``):

* The clip sequence is sampled to ``num_steps`` timesteps spread uniformly over the video
  (``sample_steps``). Every Timeception layer splits its C input channels into ``groups``
  groups (official: C / 128, i.e. 8 on 1024-d I3D features); in each group five branches,
  each starting with a 1x1 convolution to ``per_branch = int(C * 1.25 / (5 * groups))``
  channels: (1) nothing more, (2-4) a depthwise temporal convolution, multi-scale by dilation
  (kernel 3, dilations 1, 2, 3: the configs' ``MULTISCALE_TYPE: 'dl'``, Keras code) or by kernel
  size (3, 5, 7, dilation 1: ``'ks'``, the only one the PyTorch port has), (5) temporal max
  pooling of size 2, stride 1, "same" padding; each branch ends in batch norm. The branches of
  all groups are concatenated (group-major), then ReLU, then the channel shuffle across the
  groups, then temporal max pooling of size 2 between layers (the sequence halves each layer;
  channels grow by the expansion factor 1.25, truncated to a multiple of 5 * groups).
* After the last layer: max over time, then the classifier dropout 0.5 -> dense 512 -> batch
  norm -> LeakyReLU(0.2) -> dropout 0.25 -> dense (``base.ClassifierHead``).
* Loss: sigmoid + binary cross entropy for multi-label targets, softmax + cross entropy for
  single-label ones (``base.car_loss`` trains both heads, see there).
* Optimiser: Adam at lr 0.01 with epsilon 1e-4, no weight decay, 500 epochs; no schedule.
* Breakfast: the official repository has configurations for Charades only (2-4 layers on 32 to
  128 timesteps of I3D features of 256-1024 frames). The defaults here are the 3-layer,
  64-timestep (512 frames) configuration ``charades_i3d_tc3_f512.yaml`` with its batch size
  20; with 8-frame I3D segments, 64 timesteps cover a Breakfast video at its median length
  (~2 min at 15 fps) with one segment per 2 s.

Deliberate differences and interpretations:

* Input: the store's ``(T, D)`` clip features (one vector per clip) instead of I3D's
  ``(T, 7, 7, 1024)`` feature maps; the convolutions are 1-D (the official 3-D ones are 1x1 in
  space). ``groups`` is a setting (default 8) instead of D / 128, so that features of any width
  divisible by it work (D / 128 is 0 for narrow features).
* Sampling: the official code extracts one fixed uniform sampling per video offline and reuses
  it every epoch. Here training draws one clip at random inside each of the ``num_steps`` equal
  bins (every clip is used over the epochs, the order kept), evaluation takes the bin centres
  (deterministic); ``train_sampling="uniform"`` trains on the bin centres as the official code.
* Both heads on one network (shared body and hidden layer, two output layers), see ``base``.
* Checkpoint selection on the validation split (the official code saves every epoch and does
  not select).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from data_manifests.config import ConfigError
from downstream.car.base import CarModel, ClassifierHead, HeadsConfig, gather_steps, sample_steps
from downstream.task import Method

BRANCHES = 5
MULTISCALE = {"dilation": ((3, 1), (3, 2), (3, 3)),  # (kernel, dilation) of branches 2-4
              "kernel": ((3, 1), (5, 1), (7, 1))}


@dataclass(frozen=True)
class TimeceptionConfig(HeadsConfig):
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "expansion", "groups", "hidden", "layers", "num_steps"})
    num_steps: int = 64  # timesteps the clip sequence is sampled to (tc3_f512: 64)
    layers: int = 3  # Timeception layers (tc3_f512: 3)
    groups: int = 8  # channel groups per layer (official: D / 128 = 8 on I3D)
    expansion: float = 1.25  # channel expansion factor per layer
    multiscale: Literal["dilation", "kernel"] = "dilation"  # 'dl': k 3, d 1,2,3 | 'ks': k 3,5,7
    hidden: int = 512  # width of the classifier's dense layer
    dropout: float = 0.5  # dropout before the classifier's dense layer
    dropout_hidden: float = 0.25  # dropout before the output layers
    train_sampling: Literal["random", "uniform"] = "random"  # one clip per bin: random | centre


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, C, T)``: channel ``g * C/G + i`` moves to ``i * G + g`` (ShuffleNet's shuffle)."""
    b, c, t = x.shape
    return x.view(b, groups, c // groups, t).transpose(1, 2).reshape(b, c, t)


def layer_widths(in_dim: int, layers: int, groups: int, expansion: float) -> list[int]:
    """Channels per branch of each layer (official ``__get_n_channels_per_branch``)."""
    widths, channels = [], in_dim
    for _ in range(layers):
        per_branch = int(channels * expansion / (BRANCHES * groups))
        widths.append(per_branch)
        channels = per_branch * BRANCHES * groups
    return widths


class TimeceptionLayer(nn.Module):
    """One layer: grouped multi-scale temporal convolutions, ReLU, shuffle, max pool by 2."""

    def __init__(self, in_dim: int, per_branch: int, groups: int, multiscale: str):
        super().__init__()
        self.groups, self.per_branch = groups, per_branch
        width = groups * per_branch  # channels of one branch across the groups
        # The 1x1 reductions of all five branches of every group: group g's input channels give
        # its outputs [g * 5p, (g + 1) * 5p), branch b of them at [b * p, (b + 1) * p).
        self.reduce = nn.Conv1d(in_dim, groups * BRANCHES * per_branch, 1, groups=groups)
        self.temporal = nn.ModuleList(
            nn.Conv1d(width, width, kernel, padding=dilation * (kernel - 1) // 2,
                      dilation=dilation, groups=width)  # depthwise
            for kernel, dilation in MULTISCALE[multiscale])
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(BRANCHES))

    @property
    def out_dim(self) -> int:
        return self.groups * BRANCHES * self.per_branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C_in, T)`` -> ``(B, C_out, T // 2)``."""
        b, _, t = x.shape
        branches = self.reduce(x).view(b, self.groups, BRANCHES, self.per_branch, t)
        outputs = []
        for index in range(BRANCHES):
            y = branches[:, :, index].reshape(b, self.groups * self.per_branch, t)
            if 1 <= index <= 3:
                y = self.temporal[index - 1](y)
            elif index == 4:  # max pool 2, stride 1, "same": the last step pools with itself
                y = F.max_pool1d(F.pad(y, (0, 1), mode="replicate"), 2, stride=1)
            outputs.append(self.norms[index](y).view(b, self.groups, self.per_branch, t))
        y = torch.stack(outputs, dim=2).reshape(b, self.out_dim, t)  # group-major concat
        y = channel_shuffle(F.relu(y), self.groups)
        return F.max_pool1d(y, 2)


class Timeception(CarModel):
    def __init__(self, *, feature_dim: int, num_classes: int, num_activities: int,
                 num_steps: int, layers: int, groups: int, expansion: float, multiscale: str,
                 hidden: int, dropout: float, dropout_hidden: float, train_sampling: str,
                 action_weight: float, activity_weight: float):
        super().__init__()
        if feature_dim % groups:
            raise ConfigError(f"timeception.groups={groups} must divide the feature dim "
                              f"{feature_dim}")
        widths = layer_widths(feature_dim, layers, groups, expansion)
        if min(widths) < 1:
            raise ConfigError(f"timeception: features of dim {feature_dim} give no channel per "
                              f"branch with groups={groups}, expansion={expansion} (needs dim "
                              f">= {BRANCHES * groups / expansion:g}); lower timeception.groups")
        if num_steps < 2 ** layers:
            raise ConfigError(f"timeception.num_steps={num_steps} is shorter than the "
                              f"{2 ** layers} steps {layers} layers halve to one")
        self.num_steps, self.jitter = num_steps, train_sampling == "random"
        self.action_weight, self.activity_weight = action_weight, activity_weight
        blocks, channels = [], feature_dim
        for per_branch in widths:
            blocks.append(TimeceptionLayer(channels, per_branch, groups, multiscale))
            channels = blocks[-1].out_dim
        self.layers = nn.ModuleList(blocks)
        self.head = ClassifierHead(channels, num_classes, num_activities, hidden=hidden,
                                   dropout=dropout, dropout_hidden=dropout_hidden)

    def classify(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = sample_steps(mask, self.num_steps, jitter=self.training and self.jitter)
        x = gather_steps(features, index).transpose(1, 2)  # (B, D, N)
        for layer in self.layers:
            x = layer(x)  # (B, C_l, N / 2^l)
        return self.head(x.amax(dim=2))


def build(*, feature_dim: int, num_classes: int, num_activities: int, num_steps: int = 64,
          layers: int = 3, groups: int = 8, expansion: float = 1.25,
          multiscale: str = "dilation", hidden: int = 512, dropout: float = 0.5,
          dropout_hidden: float = 0.25, train_sampling: str = "random",
          action_weight: float = 1.0, activity_weight: float = 1.0) -> Timeception:
    return Timeception(feature_dim=feature_dim, num_classes=num_classes,
                       num_activities=num_activities, num_steps=num_steps, layers=layers,
                       groups=groups, expansion=expansion, multiscale=multiscale, hidden=hidden,
                       dropout=dropout, dropout_hidden=dropout_hidden,
                       train_sampling=train_sampling, action_weight=action_weight,
                       activity_weight=activity_weight)


METHOD = Method(
    name="timeception", config=TimeceptionConfig, build=build, needs=("labels", "activity"),
    summary="Timeception, multi-scale grouped temporal convolutions (Hussein et al., CVPR 2019)",
    defaults={"train.optimizer": "adam", "train.lr": 0.01, "train.adam_eps": 1e-4,
              "train.weight_decay": 0.0, "train.batch_size": 20, "train.epochs": 500,
              "data.max_snippets": 0})
