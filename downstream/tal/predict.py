"""Predictions of a trained run as an ActivityNet-style results JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_manifests.run_folder import atomic_write_text
from data_manifests.schema import load_manifest
from downstream.data import DataError, TalDataset
from downstream.data.tal import open_features
from downstream.tal.train import load_trained, predict_videos


def predict_tal(run_dir: str | Path, *, features: Any, manifest: str | Path,
                out: str | Path, split: str | None = "test", progress: bool = True) -> Path:
    """Write ``{"results": {video: [{"label", "score", "segment": [s, e]}]}}`` for a split."""
    model, config, ckpt = load_trained(run_dir)
    manifest = load_manifest(manifest)
    store = open_features(features)
    if int(store.dim) != int(ckpt["feature_dim"]):
        raise DataError(f"feature store {features} has dim {store.dim}, but run {run_dir} was "
                        f"trained on dim {ckpt['feature_dim']} features")
    if list(manifest.classes) != list(ckpt["classes"]):
        raise DataError(f"manifest {manifest.root} classes {list(manifest.classes)[:5]}... differ "
                        f"from the classes run {run_dir} was trained on "
                        f"{list(ckpt['classes'])[:5]}...")
    videos = manifest.split(split)
    dataset = TalDataset(store, manifest, [v.video_id for v in videos], cache=False)
    detections = predict_videos(model, dataset, config.post, "cpu", progress)
    results = {video: [{"label": label, "score": score, "segment": [start, end]}
                       for label, score, start, end in found]
               for video, found in detections.items()}
    payload = {"version": "weakfeat-tal", "results": results,
               "external_data": {"used": False, "details": f"features of {features}"}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(payload, indent=1) + "\n")
    return out
