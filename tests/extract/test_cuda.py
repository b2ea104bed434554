"""The CUDA paths of stage 1: mixed-precision training, resume, and export on the GPU against the
CPU. Skipped without a GPU (CI has none); run on a lent GPU machine with `pytest tests/extract`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from extract.store import open_store
from extract.store.export import ModelSpec, export_features
from extract.training.loop import train
from tests.extract.test_export import make_manifest
from tests.extract.test_training_loop import config, write_tiny_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tinydata_cuda"))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_adaptfocus_trains_on_cuda_in_each_precision(tiny_manifest, tmp_path, precision):
    cfg = config(tiny_manifest, "train.mode=adaptfocus", "train.device=cuda",
                 f"train.precision={precision}")
    run = train(cfg, tmp_path / precision)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 6 and np.isfinite(losses).all()
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    # Autocast keeps the master weights in fp32; checkpoints hold CPU tensors, so a GPU run's
    # last.pt loads on a CPU machine without a map_location.
    assert all(v.dtype == torch.float32 for v in saved["model"].values() if v.is_floating_point())
    assert all(v.device.type == "cpu" for v in saved["model"].values())
    assert all(v.device.type == "cpu" for state in saved["optimizer"]["state"].values()
               for v in state.values() if isinstance(v, torch.Tensor))
    assert (saved["ase"]["state"][1] > 0).all()
    if precision == "fp16":  # the GradScaler is live and checkpointed
        assert saved["scaler"]["scale"] > 0


def test_resume_on_cuda_continues_the_same_run(tiny_manifest, tmp_path):
    """cuDNN's convolution backward is not bitwise deterministic, so a resumed run is held to
    closeness, not equality (the CPU test holds it to equality)."""
    cfg = config(tiny_manifest, "train.mode=adaptfocus", "train.device=cuda",
                 "train.precision=fp32", "train.checkpoint_every=1")
    straight = train(cfg, tmp_path / "straight")
    train(cfg, tmp_path / "resumed", stop_after=3)
    resumed = train(cfg, tmp_path / "resumed", resume=True)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(b["model"][key], value, rtol=1e-3, atol=1e-4, msg=key)


def test_export_on_cuda_matches_the_cpu(tmp_path):
    manifest = make_manifest(tmp_path / "videos", {"long": 70, "short": 5, "mid": 40})
    stores = {}
    for device in ("cpu", "cuda"):
        stores[device] = tmp_path / f"{device}.zarr"
        summary = export_features(model_spec=ModelSpec(backbone="x3d-tiny"), manifest=manifest,
                                  store=stores[device], device=device, batch_size=4,
                                  progress=False)
        assert summary.failures == {} and summary.written == 3
    cpu, gpu = open_store(stores["cpu"]), open_store(stores["cuda"])
    for video_id in ("long", "short", "mid"):
        # TF32 convolutions on the GPU: agreement to about 1e-3 relative, not bitwise.
        np.testing.assert_allclose(gpu.read_features(video_id), cpu.read_features(video_id),
                                   rtol=2e-2, atol=2e-3)
