"""How much a feature store knows about *where* actions are, without training a localizer.

For each store (Kinc-FEAT, Weak-FEAT, Full-FEAT of the same videos) it prints:

* **clip AP**: a linear probe per class (logistic regression on standardized features) fit on the
  train split's clips with their interval labels, scored as per-clip AP on the test split and
  averaged over classes;
* **action AP**: the same for "some action" against background, with the base rate beside it;
* **within-video variance**: the share of the feature variance that lies inside videos (train
  and test). Near 0 means flat features: each video's clips look alike, so no localizer trained
  on them can tell its actions from its background;
* **noisy-head success**: a linear head trained with *video* labels on every clip (what weak
  supervision gives) over frozen features; for each labelled (video, class) of train, whether
  its highest-scoring clip lies inside an instance of that class. Chance is the mean share of
  the video the class covers. This is what an action saliency estimate could reach on them.

    .venv/bin/python benchmarks/feature_probe.py --manifest demo_out/data-demo-* \\
        demo_out/export-kinc-*/features.zarr demo_out/export-weak-*/features.zarr \\
        demo_out/export-full-*/features.zarr
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler

from data_manifests.schema import Manifest, labels_at_times, load_manifest
from extract.store import open_store


def split_clips(store, manifest: Manifest, split: str):
    """Features ``(N, D)``, interval labels ``(N, K)`` bool and video index ``(N,)`` of a split."""
    features, labels, video = [], [], []
    for i, record in enumerate(v for v in manifest.videos if v.split == split):
        x = store.read_features(record.video_id)
        times = store.read_timestamps(record.video_id)
        features.append(x)
        labels.append(labels_at_times(record, manifest.classes, times))
        video.append(np.full(len(x), i))
    return np.concatenate(features), np.concatenate(labels), np.concatenate(video)


def within_video_share(x: np.ndarray, video: np.ndarray) -> float:
    """Share of the total feature variance left after removing each video's mean."""
    centred = x.copy()
    for v in np.unique(video):
        centred[video == v] -= x[video == v].mean(axis=0)
    return float((centred**2).sum() / ((x - x.mean(axis=0)) ** 2).sum())


def probe_ap(train_x, train_y, test_x, test_y) -> float:
    """AP on test of a logistic regression fit on train (one binary target)."""
    model = LogisticRegression(C=0.1, max_iter=2000).fit(train_x, train_y)
    return float(average_precision_score(test_y, model.predict_proba(test_x)[:, 1]))


def noisy_head_success(x: np.ndarray, labels: np.ndarray, video: np.ndarray,
                       steps: int = 300) -> tuple[float, float]:
    """(top-1 success, chance) of a linear head trained with video labels on every clip."""
    torch.manual_seed(0)
    video_labels = np.stack([labels[video == v].any(axis=0) for v in np.unique(video)])
    targets = torch.tensor(video_labels[video], dtype=torch.float32)  # (N, K): Eq. 1
    inputs = torch.tensor(x, dtype=torch.float32)
    head = torch.nn.Linear(x.shape[1], labels.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(head(inputs), targets).backward()
        optimizer.step()
    with torch.no_grad():
        scores = head(inputs).numpy()
    hits, chance = [], []
    for v in np.unique(video):
        rows = np.flatnonzero(video == v)
        for c in np.flatnonzero(video_labels[v]):
            hits.append(labels[rows[scores[rows, c].argmax()], c])
            chance.append(labels[rows, c].mean())
    return float(np.mean(hits)), float(np.mean(chance))


def probe_store(path: Path, manifest: Manifest) -> dict[str, float]:
    store = open_store(path)
    train_x, train_y, train_v = split_clips(store, manifest, "train")
    test_x, test_y, test_v = split_clips(store, manifest, "test")
    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clip_ap = np.mean([probe_ap(a, train_y[:, k], b, test_y[:, k])
                           for k in range(train_y.shape[1]) if test_y[:, k].any()])
        action_ap = probe_ap(a, train_y.any(1), b, test_y.any(1))
    success, chance = noisy_head_success(a, train_y, train_v)
    return {"clip_ap": 100 * clip_ap, "action_ap": 100 * action_ap,
            "action_base": 100 * test_y.any(1).mean(),
            "within_train": within_video_share(train_x, train_v),
            "within_test": within_video_share(test_x, test_v),
            "success": success, "chance": chance}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("stores", nargs="+", type=Path)
    args = parser.parse_args()
    manifest = load_manifest(args.manifest)
    print("| store | clip AP | action AP (base) | within-video variance train / test "
          "| noisy-head success (chance) |")
    print("|---|---|---|---|---|")
    for path in args.stores:
        r = probe_store(path, manifest)
        print(f"| {path} | {r['clip_ap']:.1f} | {r['action_ap']:.1f} ({r['action_base']:.1f}) "
              f"| {r['within_train']:.2f} / {r['within_test']:.2f} "
              f"| {r['success']:.3f} ({r['chance']:.3f}) |")


if __name__ == "__main__":
    main()
