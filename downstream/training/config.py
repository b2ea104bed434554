"""The configuration tree of a stage-2 run (YAML form: ``RUN/config.yaml``).

Shared by every task: ``data`` (which videos, windows, cache) and ``train`` (optimisation and
checkpoint selection). The task adds its own sections (localization: ``post`` and ``eval``) and
every method of the task its section, named after it; the tree is built from those declarations
(:func:`config_class`), so adding a method adds its section, its CLI choice and its defaults in
one place. Feature dimension, classes, fps and clip geometry are never here: they come from the
store and the manifest.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from data_manifests.config import ConfigError, load_config


@dataclass(frozen=True)
class DataConfig:
    max_snippets: int = 512  # training crops longer videos to a random window this long (0: off)
    # Resample every video, in training and prediction, to exactly this many snippets (0: off;
    # replaces max_snippets). ASL's, RSKP's and LACP's official loaders use 750 on THUMOS'14: a
    # random snippet of each equal share in training, the first of each share at test time.
    resample: int = 0
    # The manifest split the model trains on. Checkpoints are selected on the "val" split; when
    # there is none, or when train_split is "val" itself (THUMOS'14 and MultiTHUMOS train on
    # their validation videos), a held-out part of train_split is the selection split instead:
    # round(val_fraction * n) of its videos, the first in the order of the sha1 of their ids
    # (the same videos for every seed and machine), never trained on. The test split is never
    # read in training (unless select_split says so).
    train_split: str = "train"
    val_fraction: float = 0.2  # share of train_split held out for selection (see train_split)
    # A split that selects checkpoints instead (all of train_split then trains). "test" is the
    # protocol of the official ASL, RSKP and LACP codes (best checkpoint on the test split):
    # their papers' numbers, optimistic; weakfeat never does it by default.
    select_split: str = ""
    cache_features: bool = True  # keep read features in memory (off for stores beyond RAM)
    # Manifest videos the store lacks: "error" names them and stops; "skip" leaves them out of
    # training, selection and prediction with a warning naming them (a store of a subset).
    missing: Literal["error", "skip"] = "error"
    # How training batches are drawn (data/batches.py): "random" (items shuffled each epoch),
    # "by_activity" (POC's official group sampler: each batch holds videos of one activity) or
    # "by_video" (MMN's and D3G's: train.batch_size videos with all their sentences).
    batches: Literal["random", "by_activity", "by_video"] = "random"

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={self.val_fraction} must lie in (0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "adam_beta2", "adam_eps", "lr_gamma", "warmup_init_lr"})
    epochs: int = 30  # passes over the training items
    batch_size: int = 8  # items per step (padded to the longest, masked)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # torch.optim.Adam / AdamW / SGD
    lr: float = 1e-4  # learning rate
    weight_decay: float = 1e-4  # weight decay (Adam: L2 in the gradient; AdamW: decoupled)
    adam_eps: float = 1e-8  # epsilon of Adam/AdamW (torch's default; Timeception: 1e-4)
    adam_beta2: float = 0.999  # second-moment decay of Adam/AdamW (torch's default; MMN: 0.99)
    momentum: float = 0.9  # SGD momentum (unused by Adam/AdamW)
    lr_milestones: tuple[int, ...] = ()  # epochs after which the rate is multiplied by lr_gamma
    lr_gamma: float = 0.1  # factor at each milestone
    # Schedule instead of milestones: "inverse_sqrt" (fairseq's, CPL's, per update) warms the
    # rate up linearly from warmup_init_lr to lr over warmup_updates updates, then decays it as
    # lr * sqrt(warmup_updates / update); "constant_cosine" (LTContext's constant_cosine_decay,
    # per epoch) keeps lr for lr_constant_epochs, then anneals it towards lr_min along a cosine
    # of lr_cosine_epochs; "none" leaves the rate to lr_milestones.
    lr_schedule: Literal["none", "inverse_sqrt", "constant_cosine"] = "none"
    warmup_updates: int = 0  # inverse_sqrt: updates of linear warmup (>= 1)
    warmup_init_lr: float = 1e-7  # inverse_sqrt: the rate of the first update
    lr_constant_epochs: int = 0  # constant_cosine: epochs at lr before the cosine starts
    lr_cosine_epochs: int = 0  # constant_cosine: the cosine's half period in epochs (>= 1)
    lr_min: float = 0.0  # constant_cosine: the rate the cosine ends at
    grad_clip: float = 0.0  # clip the global gradient norm to this (0: off)
    eval_every: int = 1  # epochs between validation evaluations (the last epoch always is)
    seed: int = 0  # seeds torch and the crop sampler
    device: str = "cpu"  # torch device ("cuda" on a GPU machine)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}={getattr(self, name)} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"train.lr={self.lr} must be > 0")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.weight_decay and train.grad_clip must be >= 0")
        if self.lr_schedule == "inverse_sqrt" and (self.warmup_updates < 1 or self.lr_milestones):
            raise ValueError("train.lr_schedule=inverse_sqrt needs train.warmup_updates >= 1 and "
                             "no train.lr_milestones")
        if self.lr_schedule == "constant_cosine" and (
                self.lr_cosine_epochs < 1 or self.lr_constant_epochs < 0 or self.lr_milestones
                or not 0 <= self.lr_min <= self.lr):
            raise ValueError("train.lr_schedule=constant_cosine needs train.lr_cosine_epochs >= 1, "
                             "train.lr_constant_epochs >= 0, 0 <= train.lr_min <= train.lr and "
                             "no train.lr_milestones")


def check_device(device: str, key: str) -> None:
    """Refuse, before any work, a device torch cannot parse or a CUDA device it cannot see."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"{key}={device!r}: not a torch device (cpu, cuda, cuda:N)") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={device!r}: no CUDA device is visible to torch here; use cpu")


@functools.cache
def config_class(task: Any) -> type:
    """The frozen dataclass of ``task``'s run config: task, method, data, train, the task's
    sections, one section per method."""
    names = tuple(task.methods)
    fields: list[tuple[str, Any, Any]] = [
        ("task", typing.Literal[task.name], field(default=task.name)),
        ("method", typing.Literal[names], field(default=names[0])),
        ("data", DataConfig, field(default_factory=DataConfig)),
        ("train", TrainConfig, field(default_factory=TrainConfig)),
    ]
    fields += [(name, cls, field(default_factory=cls)) for name, cls in task.sections.items()]
    fields += [(m.name, m.config, field(default_factory=m.config))
               for m in task.methods.values()]
    return make_dataclass(f"{task.name.capitalize()}RunConfig", fields, frozen=True)


def load_run_config(task: Any, method: str, path: str | Path | None = None,
                    overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """``task``'s config for ``method``: the method's official defaults, then the YAML file,
    then the ``--set`` overrides."""
    if method not in task.methods:
        raise ConfigError(f"--method {method!r} is not a {task.name} method; choose one of "
                          f"{sorted(task.methods)}")
    return load_config(config_class(task), path, [f"method={method}", *overrides],
                       base={"task": task.name, **task.methods[method].defaults})
