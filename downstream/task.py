"""What a stage-2 task and a method are: the two declarations the shared ground builds on.

A **method** is declared once, in its own file, as a :class:`Method`: its name, its config
dataclass (the run config's section named after it), its builder, the annotations it trains on
and the shared settings its official code uses (``defaults``). The CLI choice, the config
section and the defaults all come from that record.

A **task** (``tal``, ``seg``, ``car``, ``tsg``) subclasses :class:`Task`: its methods, its
dataset class (targets at the store's timestamps, item keys), how a model's outputs become the
task's predictions, how they are scored (the validation metric that selects checkpoints) and
written in the community's file format. The training loop (``downstream.training.loop``) sees
only these two interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from data_manifests.schema import Manifest
from downstream.data.store_dataset import StoreDataset


class TaskModel(nn.Module):
    """A stage-2 model on ``(B, T, D)`` clip features.

    ``training_loss(batch)`` -> (scalar loss, {name: float}) for a batch collated by the task's
    dataset. ``start_epoch`` lets a method refresh state that needs the whole training set (LACP's
    optimal sequences, RSKP's memory switch): it is called before each epoch with a function
    that yields whole-video batches; the default does nothing. How a model predicts is the
    task's business (each task's base model says).
    """

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        """Called before each training epoch; ``train_batches()`` yields whole-video batches."""


@dataclass(frozen=True)
class Method:
    name: str  # the --method choice and the config section holding ``config``
    config: type  # frozen dataclass of the method's own options (a comment per field)
    build: Callable[..., TaskModel]  # build(**task.model_args(...), **fields of config)
    summary: str  # one line for `weakfeat downstream methods`: paper and supervision
    needs: tuple[str, ...] = ()  # manifest annotations it trains on (store_dataset.ANNOTATIONS)
    # Settings of the shared sections (data., train.) as the official code has them, e.g.
    # {"train.lr": 5e-4}. They sit below a --config file and --set overrides.
    defaults: Mapping[str, Any] = field(default_factory=dict)


class Task:
    """One stage-2 task. Subclasses fill the class attributes and the four methods below."""

    name: ClassVar[str]  # "tal" | "seg" | "car" | "tsg"
    title: ClassVar[str]  # a few words for messages
    methods: ClassVar[Mapping[str, Method]]  # by name
    dataset_class: ClassVar[type[StoreDataset]]
    sections: ClassVar[Mapping[str, type]] = {}  # the task's own config sections (e.g. post)
    metric: ClassVar[str]  # validation metric that selects checkpoints (higher is better)
    headline: ClassVar[tuple[str, ...]]  # the metrics a results table reports (first: metric)
    eval_needs: ClassVar[tuple[str, ...]] = ()  # annotations the validation metric reads

    def dataset(self, store: Any, manifest: Manifest, video_ids: Sequence[str], config: Any, *,
                needs: Sequence[str] = (), training: bool = False, seed: int = 0,
                cache: bool | dict = True) -> StoreDataset:
        """The task's dataset: cropped to ``data.max_snippets`` at random when ``training``,
        whole videos otherwise; or every video resampled to ``data.resample`` snippets (at
        random when ``training``, uniformly otherwise)."""
        return self.dataset_class(
            store, manifest, video_ids, needs=needs,
            max_snippets=config.data.max_snippets if training else 0, random_crop=training,
            resample=config.data.resample, seed=seed, cache=cache, missing=config.data.missing,
            who=f"{self.name} {config.method}")

    def model_args(self, train_set: StoreDataset) -> dict[str, Any]:
        """Builder arguments derived from the data (feature dim, classes, ...); JSON-able,
        stored in every checkpoint so that a run loads without its training data."""
        return {"feature_dim": train_set.dim, "num_classes": len(train_set.classes)}

    def signature(self, manifest: Manifest) -> dict[str, Any]:
        """What a manifest must share with the one a run was trained on to be predicted."""
        return {"classes": list(manifest.classes)}

    def predict(self, model: TaskModel, dataset: StoreDataset, config: Any, *,
                device: str = "cpu", progress: bool = False) -> dict[Any, Any]:
        """The task's predictions of every item of ``dataset`` (whole videos), by item key."""
        raise NotImplementedError

    def evaluate(self, predictions: dict[Any, Any], dataset: StoreDataset,
                 config: Any) -> dict[str, Any]:
        """The field's metrics of ``predictions`` against ``dataset``'s annotations (fractions;
        holds :attr:`metric`)."""
        raise NotImplementedError

    def write(self, predictions: dict[Any, Any], dataset: StoreDataset, out: Path, *,
              source: str) -> Path:
        """Write ``predictions`` in the task's standard format to ``out``; returns it."""
        raise NotImplementedError
