"""The configuration tree of a localization run (YAML form: ``RUN/config.yaml``).

Feature dimension, number of classes, fps and clip geometry are never here: they come from the
store and the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from downstream.tal.asl import AslConfig
from downstream.tal.lacp import LacpConfig
from downstream.tal.mil import MilConfig
from downstream.tal.postprocess import PostprocessConfig
from downstream.tal.rskp import RskpConfig

THUMOS_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class DataConfig:
    max_snippets: int = 512  # training crops longer videos to a random window this long (0: off)
    # The manifest split the model trains on. Checkpoints are selected on the "val" split; when
    # there is none, or when train_split is "val" itself (THUMOS'14 and MultiTHUMOS train on
    # their validation videos), a held-out part of train_split is the selection split instead:
    # round(val_fraction * n) of its videos, the first in the order of the sha1 of their ids
    # (the same videos for every seed and machine), never trained on. The test split is never
    # read in training.
    train_split: str = "train"
    val_fraction: float = 0.2  # share of train_split held out for selection (see train_split)
    cache_features: bool = True  # keep read features in memory (off for stores beyond RAM)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # passes over the training videos
    batch_size: int = 8  # videos per step (padded to the longest, masked)
    lr: float = 1e-4  # Adam learning rate (ASL/LACP: 1e-4)
    weight_decay: float = 1e-4  # Adam weight decay (ASL: 1e-4)
    eval_every: int = 1  # epochs between validation evaluations (the last epoch always is)
    seed: int = 0  # seeds torch and the crop sampler
    tiou: tuple[float, ...] = THUMOS_TIOU  # IoU thresholds of the validation mAP
    device: str = "cpu"  # torch device ("cuda" on a GPU machine)


@dataclass(frozen=True)
class TalConfig:
    method: Literal["mil", "asl", "rskp", "lacp"] = "mil"  # which model (set by --method)
    data: DataConfig = field(default_factory=DataConfig)  # dataset options
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation and selection
    post: PostprocessConfig = field(default_factory=PostprocessConfig)  # segments from the CAS
    mil: MilConfig = field(default_factory=MilConfig)  # used when method = mil
    asl: AslConfig = field(default_factory=AslConfig)  # used when method = asl
    rskp: RskpConfig = field(default_factory=RskpConfig)  # used when method = rskp
    lacp: LacpConfig = field(default_factory=LacpConfig)  # used when method = lacp
