"""Loading pretrained weights: local checkpoints, the pytorchvideo hub, head replacement."""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np
import torch

from data_manifests.errors import UserError
from extract.backbones.base import VideoBackbone

log = logging.getLogger(__name__)

HUB_TIMEOUT_S = 3.0  # seconds to wait for the model hub before calling the machine offline


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained weights could not be found, fetched or matched to the model."""


def load_checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file: a raw state_dict, or a dict holding one under "model",
    "model_state" (pytorchvideo / SlowFast) or "state_dict". A DDP "module." prefix is removed."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # re-raised with the file named
        raise PretrainedWeightsError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, Mapping):
        raise PretrainedWeightsError(f"checkpoint {path} holds a {type(checkpoint).__name__}, "
                                     "not a state_dict")
    for key in ("model", "model_state", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state_dict = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise PretrainedWeightsError(f"checkpoint {path}: entry {key!r} is a "
                                         f"{type(value).__name__}, not a tensor")
        state_dict[key.removeprefix("module.")] = value
    return state_dict


def fetch_hub_state_dict(url: str) -> dict[str, torch.Tensor]:
    """Download (or reuse from the torch hub cache) a pytorchvideo model-zoo checkpoint.

    Fails within ``HUB_TIMEOUT_S`` seconds when the host cannot be reached, saying how to pass
    a local file instead.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        host = urlparse(url).hostname or url
        try:
            socket.create_connection((host, 443), timeout=HUB_TIMEOUT_S).close()
        except OSError as error:
            raise PretrainedWeightsError(
                f"cannot reach {host} ({error}): this machine looks offline. Download {url} "
                "on a connected machine and pass the file: pretrained=PATH in Python, "
                f"--pretrained PATH on the command line (or copy it to {cached})") from error
        log.info("downloading %s", url)
        torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    return load_checkpoint_state_dict(cached)


def apply_state_dict(model: VideoBackbone, state_dict: Mapping[str, torch.Tensor], *,
                     source: str) -> list[str]:
    """Load `state_dict` into `model`, keeping the model's own head where shapes differ.

    Keys are first mapped with ``model.convert_pretrained_key``. Head weights (``head.*``)
    whose shape differs, or that are missing, are dropped and the head keeps its fresh
    initialisation; any other missing, unexpected or mis-shaped key is an error naming it.
    Returns the dropped head keys.
    """
    converted = {model.convert_pretrained_key(key): value for key, value in state_dict.items()}
    own = model.state_dict()
    dropped = [key for key in own if key.startswith("head.")
               and (key not in converted or converted[key].shape != own[key].shape)]
    if dropped:  # drop the whole head together, never half of it
        dropped = [key for key in own if key.startswith("head.")]
        for key in dropped:
            converted.pop(key, None)
    problems = [f"missing {key}" for key in own if key not in converted and key not in dropped]
    problems += [f"unexpected {key}" for key in converted if key not in own]
    problems += [f"shape of {key}: checkpoint {tuple(value.shape)} vs model "
                 f"{tuple(own[key].shape)}" for key, value in converted.items()
                 if key in own and value.shape != own[key].shape]
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)"
                                           if len(problems) > 10 else "")
        raise PretrainedWeightsError(f"weights from {source} do not fit "
                                     f"{type(model).__name__}: {shown}")
    model.load_state_dict(converted, strict=False)
    if dropped:
        log.info("pretrained %s: head re-initialised for %d classes", source, model.num_classes)
    return dropped


def load_pretrained(model: VideoBackbone, pretrained: str | Path) -> list[str]:
    """`pretrained` is "kinetics400" or a checkpoint path. Returns the dropped head keys."""
    if str(pretrained) == "kinetics400":
        return apply_state_dict(model, model.kinetics400_state_dict(), source="kinetics400")
    return apply_state_dict(model, load_checkpoint_state_dict(pretrained), source=str(pretrained))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and plain containers) and nothing else."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are admitted")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy >= 2 name
        return super().find_class(module, name)


def read_numpy_pickle(path: str | Path):
    """Read a pickle of (nested dicts of) numpy arrays without executing anything else."""
    with open(path, "rb") as file:
        try:
            return _NumpyOnlyUnpickler(file).load()
        except (pickle.UnpicklingError, EOFError) as error:
            raise PretrainedWeightsError(f"cannot read {path}: {error}") from error
