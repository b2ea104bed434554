"""The text-blind reference of a grounding benchmark: what knowing only where moments tend to
lie gives, without reading the sentence or the video.

    python benchmarks/grounding_prior.py --manifest M [--grid 20]

Every sentence gets the same ranked list of moments, given as fractions of its video's
duration on a grid of ``grid`` steps. The list is chosen on the train split, per IoU
threshold m: greedily, each next moment is the one that hits (IoU >= m) the most training
sentences not yet hit by the moments before it (R@1 takes the first, R@5 the first five).
The lists are then scored on the test split with the project's evaluator. A grounding method
that does not beat these numbers has not learnt to read the sentence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def greedy_moments(targets: np.ndarray, cells: np.ndarray, threshold: float, count: int
                   ) -> list[int]:
    """Indices of ``count`` cells (``(C, 2)`` fractions) covering the most ``targets``
    (``(N, 2)`` fractions) at IoU >= ``threshold``, chosen greedily."""
    inter = np.clip(np.minimum(cells[:, None, 1], targets[None, :, 1])
                    - np.maximum(cells[:, None, 0], targets[None, :, 0]), 0, None)
    union = (np.maximum(cells[:, None, 1], targets[None, :, 1])
             - np.minimum(cells[:, None, 0], targets[None, :, 0]))
    hit = inter / np.maximum(union, 1e-9) >= threshold  # (C, N)
    chosen, covered = [], np.zeros(len(targets), dtype=bool)
    for _ in range(count):
        gain = (hit & ~covered[None, :]).sum(axis=1)
        gain[chosen] = -1
        best = int(np.argmax(gain))
        chosen.append(best)
        covered |= hit[best]
    return chosen


def prior_recalls(manifest_dir: str, grid: int = 20) -> dict[str, float]:
    from data_manifests.schema import load_manifest
    from downstream.metrics.grounding import load_grounding_ground_truth, recall_at_iou

    manifest = load_manifest(manifest_dir)
    train = np.array([(max(s.start, 0.0) / v.duration, min(s.end, v.duration) / v.duration)
                      for v in manifest.split("train").videos for s in v.sentences])
    edges = np.arange(grid + 1) / grid
    cells = np.array([(a, b) for a in edges for b in edges if b > a])
    test = load_grounding_ground_truth(manifest_dir, split="test")
    out = {}
    for threshold in (0.5, 0.7):
        ranked = [tuple(cells[i]) for i in greedy_moments(train, cells, threshold, 5)]
        predictions = {q: [(a * d, b * d, 1.0 - k / 10) for k, (a, b) in enumerate(ranked)]
                       for q, (d, _, _) in test.items()}
        # nms_threshold 1: the list is already what it is; suppressing would reorder nothing
        scores = recall_at_iou(test, predictions, recall=(1, 5), iou=(threshold,),
                               nms_threshold=1.0)
        out.update({k: v for k, v in scores.items() if k.startswith("R@")})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--grid", type=int, default=20, help="moment boundaries per video")
    args = parser.parse_args()
    scores = prior_recalls(args.manifest, args.grid)
    print(" | ".join(f"{k} {100 * v:.1f}" for k, v in sorted(scores.items())))


if __name__ == "__main__":
    main()
