"""Stage-1 training on long videos (full / noisy / adaptfocus) and loading of trained runs.

``load_trained_backbone(run_dir)`` is how feature export gets a trained model (CONTRACTS T).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from data_manifests.run_folder import read_checkpoint


@dataclass
class TrainedBackbone:
    model: nn.Module  # a VideoBackbone with the run's K-way head, weights loaded, eval mode
    backbone: str  # its name in extract.backbones.BACKBONES
    mode: str  # "full" | "noisy" | "adaptfocus"
    supervision: str  # "full" for full, "weak" otherwise (store extractor key)
    weights_sha256: str
    config: dict[str, Any] = field(default_factory=dict)  # the run's resolved config


def load_trained_backbone(run_dir: str | Path) -> TrainedBackbone:
    """The model of ``RUN/checkpoints/last.pt`` (any file path to a checkpoint also works), its
    ``input_spec`` the clips the run trained on."""
    from extract.backbones import build_backbone
    from extract.backbones.base import weights_sha256

    path = Path(run_dir)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint (is {run_dir} a stage-1 run folder?)")
    saved = read_checkpoint(path, needs=("config", "model"))
    config = saved["config"]
    name = config["model"]["backbone"]
    num_classes = int(saved["model"]["head.weight"].shape[0])
    model = build_backbone(name, num_classes=num_classes, pretrained=None)
    model.load_state_dict(saved["model"])
    model.eval()
    # The clips it was trained on (the run's model.num_frames etc. over the backbone's own):
    # export and evaluation feed it the same.
    from extract.training.data import effective_spec

    trained_on = config["model"]
    model.input_spec = effective_spec(
        model.input_spec, num_frames=trained_on.get("num_frames"),
        frame_stride=trained_on.get("frame_stride"), crop_size=trained_on.get("crop_size"),
        short_side=trained_on.get("short_side"))
    mode = config["train"]["mode"]
    return TrainedBackbone(model=model, backbone=name, mode=mode,
                           supervision="full" if mode == "full" else "weak",
                           weights_sha256=weights_sha256(model), config=config)


__all__ = ["TrainedBackbone", "load_trained_backbone"]
