"""Video-level evaluation of a stage-1 run (paper 4.1: view_t x view_s clips per video, scores
averaged; Charades mAP via ``downstream.metrics.classification.multilabel_map``).

Also, when the manifest has intervals, the top-N success ratio (Figure S4) of the dense clip
scores: the share of (video, label) pairs for which at least one of the N highest-scoring
temporal views has its centre inside a true interval of that label.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data_manifests.config import ConfigError
from data_manifests.run_folder import RunFolder
from data_manifests.schema import Manifest, labels_at_times, load_manifest
from extract.training.data import ClipGeometry, video_targets
from extract.training.frames import StreamingFrames

log = logging.getLogger(__name__)


def parse_views(views: str) -> tuple[int, int]:
    """"10x3" -> (10, 3)."""
    try:
        t, s = (int(part) for part in views.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--views {views!r}: expected view_t x view_s, e.g. 10x3") from None
    if t < 1 or s not in (1, 3):
        raise ConfigError(f"--views {views!r}: view_t must be >= 1 and view_s 1 or 3")
    return t, s


def clip_views(frames: torch.Tensor, spec, views_s: int) -> list[torch.Tensor]:
    """uint8 (C, T, H, W) -> ``views_s`` normalized crops (1: centre crop; 3: SlowFast 3 crops)."""
    from extract.transforms import (
        normalize,
        prepare_clip,
        resize_short_side,
        three_crops,
        to_float01,
    )

    if views_s == 1:
        return [prepare_clip(frames, spec, train=False)]
    # Three crops cover the whole long side: resize the short side to the crop size first.
    clip = resize_short_side(to_float01(frames), spec.crop_size)
    return [normalize(c, spec.mean, spec.std) for c in three_crops(clip, spec.crop_size)]


@torch.no_grad()
def predict_video_views(model, manifest: Manifest, video, spec, *, views_t: int, views_s: int,
                        device: torch.device, videos_root: str | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per temporal view: clip-centre times (T,) s and probabilities (T, K), crops averaged."""
    geometry = ClipGeometry(spec.num_frames, spec.frame_stride)
    starts = geometry.evenly_spaced_starts(video, views_t)
    read = StreamingFrames(manifest, videos_root)
    probs = []
    for start in starts:
        frames = read(video, geometry.indices(start))
        crops = torch.stack(clip_views(frames, spec, views_s)).to(device)
        probs.append(torch.sigmoid(model(crops).float()).mean(dim=0).cpu())
    times = np.array([geometry.centre_time(s, video.fps) for s in starts])
    return times, torch.stack(probs).numpy()


def evaluate_run(run_dir: str | Path, manifest_path: str | Path, *, split: str = "test",
                 views: str = "10x3", videos_root: str | None = None, device: str = "auto",
                 plot_videos: int = 3) -> dict | None:
    """Evaluate ``run_dir``'s last checkpoint; write predictions/, plots and results.json.

    Under torchrun (``WORLD_SIZE`` > 1) every rank predicts its share of the videos, rank 0
    gathers them, scores, writes and returns the result; the other ranks return None. N
    processes thus evaluate about N times faster, and only one writes.
    """
    from downstream.metrics.classification import multilabel_map
    from extract.training import load_trained_backbone
    from extract.training.loop import _barrier, runtime_from_env
    from extract.training.plots import plot_training_curves, plot_video_predictions

    views_t, views_s = parse_views(views)
    rt = runtime_from_env(device)
    run = RunFolder(run_dir)
    trained = load_trained_backbone(run_dir)
    model = trained.model.to(rt.device).eval()
    spec = model.input_spec  # the clips the run trained on
    manifest = load_manifest(manifest_path).split(split)
    videos = [v for v in manifest.videos if v.labels]  # Charades: unlabeled videos excluded
    classes = manifest.classes
    mine = []
    for index in tqdm(range(rt.rank, len(videos), rt.world_size), desc=f"evaluate {split}",
                      dynamic_ncols=True, disable=not rt.main):
        times, probs = predict_video_views(model, manifest, videos[index], spec,
                                           views_t=views_t, views_s=views_s, device=rt.device,
                                           videos_root=videos_root)
        mine.append((index, times, probs))
    predicted = _gather_to_main(mine, rt)
    if not rt.main:
        _barrier(rt)  # leave with rank 0: a rank gone while gloo still talks aborts at exit
        return None
    dense = [(videos[index], times, probs) for index, times, probs in predicted]
    scores = [probs.mean(axis=0) for _, _, probs in dense]
    targets = [video_targets(video, manifest.class_index).numpy() for video, _, _ in dense]
    result = multilabel_map(np.stack(scores), np.stack(targets))
    out = {"split": split, "views": f"{views_t}x{views_s}", "num_videos": len(videos),
           "mAP": result["mAP"], "mAP_nanmean": result["mAP_nanmean"], "wAP": result["wAP"],
           "ap_per_class": result["ap_per_class"], "mode": trained.mode,
           "backbone": trained.backbone, "weights_sha256": trained.weights_sha256}
    if all(v.segments is not None for v in videos):
        for n in (1, 2, 3):
            out[f"top{n}_success"] = top_n_success(dense, manifest, n)
    run.predictions.mkdir(parents=True, exist_ok=True)
    _write_scores(run.predictions / f"{split}_scores.txt", videos, np.stack(scores))
    for video, times, probs in dense[:plot_videos]:
        if video.segments is None:
            continue
        truth = labels_at_times(video, classes, times).astype(float)
        plot_video_predictions(run.path / f"plot_{split}_{video.video_id}.png",
                               video_id=video.video_id, times=times, scores=probs, truth=truth,
                               classes=classes,
                               class_indices=[manifest.class_index[c] for c in video.labels])
    plot_training_curves(run.path / "plot_training.png", run.read_metrics())
    _barrier(rt)
    return out


def _gather_to_main(mine: list, rt) -> list:
    """Every rank's (index, times, probs), in video order, on rank 0 (others get [])."""
    if rt.world_size == 1:
        return mine
    import torch.distributed as dist

    parts: list = [None] * rt.world_size
    dist.all_gather_object(parts, mine)  # (gather_object is not on every backend)
    if not rt.main:
        return []
    return sorted((item for part in parts for item in part), key=lambda item: item[0])


def top_n_success(dense, manifest: Manifest, n: int) -> float:
    """Share of (video, label) pairs with a top-n temporal view inside a true interval."""
    hits = total = 0
    for video, times, probs in dense:
        truth = labels_at_times(video, manifest.classes, times)  # (T, K)
        for label in video.labels:
            k = manifest.class_index[label]
            if not truth[:, k].any():
                continue  # no view centre falls inside the (short) interval: not measurable
            top = np.argsort(-probs[:, k], kind="stable")[:n]
            hits += bool(truth[top, k].any())
            total += 1
    return hits / total if total else float("nan")


def _write_scores(path: Path, videos, scores: np.ndarray) -> None:
    """Charades submission format: ``video_id score_1 ... score_K`` per line."""
    with path.open("w") as fh:
        for video, row in zip(videos, scores):
            fh.write(video.video_id + " " + " ".join(f"{x:.6f}" for x in row) + "\n")
