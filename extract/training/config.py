"""The stage-1 training config: one frozen dataclass tree; YAML is its serialized form.

Load with ``load_config(Stage1Config, path, overrides)`` (unknown keys are errors; overrides are
``--set optim.lr=3e-4``). Values derived from data (number of classes, fps) are read from the
manifest, never written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from data_manifests.config import ConfigError, load_config

Mode = Literal["full", "noisy", "adaptfocus"]


@dataclass(frozen=True)
class DataConfig:
    manifest: str = ""  # manifest folder (meta.json + videos.jsonl); relative to the CWD
    # folder the manifest's video paths are relative to (None: the manifest folder)
    videos_root: str | None = None
    train_split: str = "train"  # split trained on (and whose ASE state is kept)
    num_workers: int = 2  # DataLoader worker processes (0: read in the main process)
    # Random left-right flips in training. Off by default: the synthetic benchmark's classes are
    # direction-sensitive (move-left vs move-right, rotate-cw vs -ccw) and a flip swaps them.
    # Turn on for real datasets (Charades, Breakfast), as SlowFast/pytorchvideo recipes do.
    horizontal_flip: bool = False
    # Decode every training video once into RAM (refused above half the machine's memory).
    # For small datasets (the synthetic presets), where random clip reads are decode-bound.
    cache_frames: bool = False


@dataclass(frozen=True)
class ModelConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "crop_size", "frame_stride", "num_frames", "short_side"})
    backbone: str = "x3d-tiny"  # a name of extract.backbones.BACKBONES
    # None | "kinetics400" | path to a checkpoint (e.g. a `source`-preset run's last.pt)
    pretrained: str | None = None
    num_frames: int | None = None  # F, frames per clip (None: the backbone's input spec)
    frame_stride: int | None = None  # tau, frames between sampled frames (None: the backbone's)
    crop_size: int | None = None  # square crop side in pixels (None: the backbone's)
    short_side: int | None = None  # resize the short side to this first (None: the backbone's)


@dataclass(frozen=True)
class AdaptFocusConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"naive_clips", "theta"})
    theta: float = 0.75  # actionness threshold a_hat = theta * a (paper 4.1)
    # the weighting function W: Eq. 5 (exponential) or Appendix S1.5 (Eq. S1-S3)
    weighting: Literal["exponential", "constant", "linear", "logarithmic"] = "exponential"
    alpha: float | None = None  # W's alpha (None: the paper's value for the chosen weighting)
    beta: float | None = None  # W's beta (None: the paper's value for the chosen weighting)
    action_focusing: bool = True  # use W (False: W = 1; the Figure 3 ablation)
    clip_focusing: bool = True  # use M (False: M = 1; the Figure 3 ablation)
    warmup_fraction: float = 0.2  # first fraction of iterations in noisy mode, ASE already updating
    # ASE: "online" = Eq. 3 from the sampled clips; "naive" = Eq. 2 on `naive_clips` clips of
    # every video of the batch at every step (costly)
    estimation: Literal["online", "naive"] = "online"
    naive_clips: int = 16  # clips evenly spread per video for a naive (Eq. 2) estimation
    naive_every_epochs: int = 0  # remedy: Eq. 2 on every training video every N epochs (0: off)
    spike_decay: float = 1.0  # remedy: multiply every spike-actionness by this each epoch (1: off)


@dataclass(frozen=True)
class OptimConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"lr"})
    name: Literal["adamw", "sgd"] = "adamw"  # optimizer
    lr: float = 1e-3  # peak learning rate (of the classifier head)
    # The pretrained trunk's learning rate is lr * backbone_lr_scale. Below 1 the fine-tune keeps
    # more of what pre-training learned (what clip-level scores, and so the ASE, rest on).
    backbone_lr_scale: float = 1.0
    # The trunk is held still (lr 0) for this first fraction of the iterations while the new head
    # learns on the pretrained features (a linear-probe warm-up, then fine-tuning).
    freeze_backbone_fraction: float = 0.0
    weight_decay: float = 1e-4  # decoupled (adamw) or L2 (sgd)
    momentum: float = 0.9  # sgd only
    schedule: Literal["cosine", "constant"] = "cosine"  # per-iteration decay after the warm-up
    warmup_steps: int = 0  # linear learning-rate warm-up iterations (not the AdaptFocus warm-up)
    grad_clip: float | None = None  # clip the gradient norm to this (None: off)

    def __post_init__(self) -> None:
        if self.backbone_lr_scale < 0:
            raise ConfigError(f"optim.backbone_lr_scale={self.backbone_lr_scale!r}: must be >= 0")
        if not 0.0 <= self.freeze_backbone_fraction <= 1.0:
            raise ConfigError(f"optim.freeze_backbone_fraction={self.freeze_backbone_fraction!r}:"
                              " must lie in [0, 1]")


@dataclass(frozen=True)
class TrainConfig:
    mode: Mode = "adaptfocus"  # clip labels: full (intervals), noisy (Eq. 1), adaptfocus (Eq. 9)
    epochs: int = 10  # one epoch = one random clip from every training video
    batch_size: int = 8  # clips per iteration per process
    seed: int = 0  # seeds model init, clip positions, crops and video order
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    # auto: bf16 (fp16 where bf16 is unsupported) autocast on CUDA, fp32 on CPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_every: int = 0  # iterations between checkpoints (0: at the end of every epoch)
    log_every: int = 10  # iterations between metrics.jsonl records
    success_every_epochs: int = 1  # log the ASE top-1 success (Fig. S4) every N epochs (0: off)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)!r}: must be >= 1")
        for name in ("checkpoint_every", "success_every_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}={getattr(self, name)!r}: must be >= 0")


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"  # split `weakfeat extract train` evaluates at the end ("": skip)
    views_t: int = 10  # temporal clips per video, evenly spaced
    views_s: int = 1  # spatial crops per clip (1: centre, 3: three crops)
    plot_videos: int = 3  # videos drawn as per-class curves (Fig. 4)

    # checked here, before training, not when the evaluation at the end reaches them
    def __post_init__(self) -> None:
        if self.views_t < 1:
            raise ConfigError(f"eval.views_t={self.views_t!r}: must be >= 1")
        if self.views_s not in (1, 3):
            raise ConfigError(f"eval.views_s={self.views_s!r}: must be 1 (centre) or 3 crops")
        if self.plot_videos < 0:
            raise ConfigError(f"eval.plot_videos={self.plot_videos!r}: must be >= 0")


@dataclass(frozen=True)
class Stage1Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    adaptfocus: AdaptFocusConfig = field(default_factory=AdaptFocusConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_stage1_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Stage1Config:
    return load_config(Stage1Config, path, overrides)
