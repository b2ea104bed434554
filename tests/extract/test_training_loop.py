"""Stage-1 training loop on a tiny hand-made mp4 dataset with x3d-tiny: modes, exact resume,
NaN stop, full mode without segments, unknown config keys."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from data_manifests.config import ConfigError
from data_manifests.schema import ManifestError, ManifestMeta, Segment, VideoRecord, write_manifest
from extract.training.config import load_stage1_config
from extract.training.loop import train

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def write_tiny_dataset(root: Path, *, num_videos: int = 6, frames: int = 40, fps: float = 10.0,
                       segments: bool = True) -> Path:
    """Grey 32x32 videos; class c is a coloured square during its interval."""
    rng = np.random.default_rng(0)
    videos = []
    (root / "videos").mkdir(parents=True, exist_ok=True)
    names = list(COLORS)
    for i in range(num_videos):
        length = frames if i != num_videos - 1 else 5  # one video shorter than a clip
        labels = sorted(rng.choice(names, size=2, replace=False).tolist())
        segs = []
        for j, label in enumerate(labels):
            start = (j * length / 2) / fps
            segs.append(Segment(label, start, start + length / 4 / fps))
        pixels = np.full((length, 32, 32, 3), 128, np.uint8)
        for seg in segs:
            lo, hi = int(seg.start * fps), int(seg.end * fps)
            pixels[lo:hi, 8:24, 8:24] = COLORS[seg.label]
        path = root / "videos" / f"v{i}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=int(fps))
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": "8"}
            for frame in pixels:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        videos.append(VideoRecord(video_id=f"v{i}", path=f"videos/v{i}.mp4",
                                  split="train" if i < num_videos - 2 else "test",
                                  duration=length / fps, fps=fps, num_frames=length,
                                  labels=tuple(labels),
                                  segments=tuple(segs) if segments else None))
    write_manifest((ManifestMeta(dataset="tiny-hand", classes=tuple(names), fps=fps), videos),
                   root)
    return root


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tinydata"))


def config(manifest: Path, *extra: str):
    return load_stage1_config(None, [f"data.manifest={manifest}", "data.num_workers=0",
                                     "train.batch_size=2", "train.epochs=3", "train.log_every=1",
                                     "model.backbone=x3d-tiny", "optim.lr=0.01", *extra])


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=False)


@pytest.mark.parametrize("mode", ["full", "noisy", "adaptfocus"])
def test_each_mode_trains_and_logs(tiny_manifest, tmp_path, mode):
    run = train(config(tiny_manifest, f"train.mode={mode}"), tmp_path / mode)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 6 and all(np.isfinite(losses))  # 4 videos / batch 2 * 3 epochs
    assert any("ase_success" in r for r in records)
    saved = _weights(run)
    assert saved["step"] == 6 and saved["config"]["train"]["mode"] == mode
    assert saved["ase"]["state"].shape == (2, 8)  # 4 training videos x 2 labels
    assert (saved["ase"]["state"][1] > 0).all()  # every instance was seen and updated
    if mode == "adaptfocus":  # warm-up 20% of 6 -> focusing from step 1 on
        assert [r["focusing"] for r in records if "loss" in r] == [False] + [True] * 5
        assert "above_threshold" in records[-2]


def test_exact_resume(tiny_manifest, tmp_path):
    cfg = config(tiny_manifest, "train.mode=adaptfocus", "train.checkpoint_every=1")
    straight = train(cfg, tmp_path / "straight")
    train(cfg, tmp_path / "resumed", stop_after=3)
    assert _weights(tmp_path / "resumed")["step"] == 3
    resumed = train(cfg, tmp_path / "resumed", resume=True)
    a, b = _weights(straight), _weights(resumed)
    assert b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["ase"]["state"], b["ase"]["state"])


def test_existing_run_needs_resume(tiny_manifest, tmp_path):
    cfg = config(tiny_manifest, "train.epochs=1")
    train(cfg, tmp_path / "r")
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "r")


def test_full_mode_without_segments_is_a_clear_error(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", num_videos=3, segments=False)
    with pytest.raises(ManifestError, match="mode 'full' needs interval annotations"):
        train(config(manifest, "train.mode=full"), tmp_path / "run")


def test_unknown_config_key_is_an_error(tiny_manifest):
    with pytest.raises(ConfigError, match="adaptfocus.thetta"):
        config(tiny_manifest, "adaptfocus.thetta=0.5")


def test_nan_loss_names_step_and_videos(tiny_manifest, tmp_path, monkeypatch):
    from extract.training import loop

    real = loop.bce_loss
    calls = {"n": 0}

    def poisoned(logits, targets):
        calls["n"] += 1
        return real(logits, targets) * (float("nan") if calls["n"] == 2 else 1.0)

    monkeypatch.setattr(loop, "bce_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"at step 1 .*videos in this process's batch: "
                                                 r"\['v\d', 'v\d'\]"):
        train(config(tiny_manifest, "train.mode=noisy"), tmp_path / "nan")


@pytest.mark.parametrize("hold", ["optim.backbone_lr_scale=0",
                                  "optim.freeze_backbone_fraction=1.0"])
def test_a_held_trunk_stays_put_while_the_head_trains(tiny_manifest, tmp_path, hold):
    # x3d-tiny's weights at initialization, from the same seed the run uses.
    cfg = config(tiny_manifest, "train.mode=noisy", hold, "train.epochs=1",
                 "optim.weight_decay=0")
    from extract.training.loop import _seed_everything, build_model

    _seed_everything(cfg.train.seed)
    initial = build_model(cfg, num_classes=3).state_dict()
    trained = _weights(train(cfg, tmp_path / "frozen"))["model"]
    trunk = [k for k in initial if not k.startswith("head.") and initial[k].is_floating_point()
             and "running_" not in k]  # BatchNorm statistics move without the optimizer
    assert trunk and all(torch.equal(initial[k], trained[k]) for k in trunk)
    assert not torch.equal(initial["head.weight"], trained["head.weight"])


def test_a_trunk_frozen_for_half_the_run_moves_in_the_second_half(tiny_manifest, tmp_path):
    cfg = config(tiny_manifest, "train.mode=noisy", "optim.freeze_backbone_fraction=0.5",
                 "train.checkpoint_every=1", "optim.weight_decay=0")
    run = train(cfg, tmp_path / "half", stop_after=3)  # 6 steps: the trunk is held for 3
    at3 = _weights(run)["model"]
    at6 = _weights(train(cfg, run, resume=True))["model"]
    from extract.training.loop import _seed_everything, build_model

    _seed_everything(cfg.train.seed)
    initial = build_model(cfg, num_classes=3).state_dict()
    key = next(k for k in initial if initial[k].dim() == 5)  # the first 3D convolution
    assert torch.equal(initial[key], at3[key]) and not torch.equal(at3[key], at6[key])


@pytest.mark.parametrize("bad", ["optim.backbone_lr_scale=-0.1",
                                 "optim.freeze_backbone_fraction=1.5"])
def test_bad_trunk_settings_are_named(tiny_manifest, bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
        config(tiny_manifest, bad)
