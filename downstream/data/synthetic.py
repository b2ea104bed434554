"""Synthetic clip features made from a manifest, for benchmarks and tests before (or besides)
stage-1 export.

The features are built to be hard in the ways real localization is hard:

* class confusion: class prototypes come in pairs that share a component;
* context: every video carries a scene vector of its class, strongest just before and after
  each instance (the "cricket pitch without a shot" of ASL Fig. 1);
* weak instances: each instance has its own amplitude, some barely above the noise;
* boundary blur: the action signal is smoothed over neighbouring clips;
* temporally smooth (AR(1)) noise and a per-video background scene.

A class-agnostic actionness direction is shared by all actions, as ASL assumes of real data,
and "idle" directions by background clips (real background is not arbitrary either; with
``background_modes`` > 1 each background stretch shows one of several).

I3D-shaped features (``streams=2``, ``snippet_frames=16``, ``nonnegative``): two halves with
their own directions, RGB (appearance: the class scene and context at full strength, half the
actionness) | flow (motion: actionness 1.5x, a fifth of the context), one snippet per 16 frames
at each video's own fps, and non-negative values (a smooth ReLU, as I3D's averaged ReLU
outputs).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_manifests.schema import Manifest, ManifestMeta, Point, Segment, VideoRecord


@dataclass(frozen=True)
class SyntheticFeatures:
    dim: int = 64  # feature dimension D
    step: float = 1.0  # seconds between clip centres
    confusion: float = 0.6  # weight of the component shared by paired classes
    context: float = 0.5  # strength of the class scene next to instances
    idle: float = 1.0  # strength of a direction shared by background clips of all videos
    actionness: float = 0.7  # strength of the shared actionness direction inside instances
    amplitude: tuple[float, float] = (0.6, 1.4)  # range of per-instance class-signal strength
    blur: float = 1.5  # Gaussian smoothing (clips) of the action signal
    noise: float = 0.2  # std of the AR(1) noise
    noise_rho: float = 0.7  # AR(1) coefficient (temporal smoothness of the noise)
    streams: int = 1  # feature halves with their own directions (2: I3D's RGB | flow)
    background_modes: int = 1  # idle directions; each background stretch shows one of them
    snippet_frames: int = 0  # > 0: one snippet per this many frames at the video's fps (not step)
    nonnegative: bool = False  # a smooth ReLU, softplus(3x)/3 (I3D's averaged ReLU outputs)
    # Length of every direction (prototypes, scenes, actionness, idle, background); sqrt(D/64)
    # keeps the per-dimension signal of the 64-d default in D dimensions.
    magnitude: float = 1.0


# (context, actionness) weight of each stream when streams = 2: RGB sees the scene, flow motion
STREAM_WEIGHTS = ((1.0, 0.5), (0.2, 1.5))


def thumos_like_manifest(*, num_videos: int, num_classes: int, seed: int,
                         duration: tuple[float, float] = (60.0, 150.0),
                         instances: tuple[int, int] = (2, 6),
                         length: tuple[float, float] = (3.0, 14.0),
                         second_class: float = 0.2,
                         splits: tuple[float, float] = (0.6, 0.2),
                         fps: tuple[float, ...] = (30.0,)) -> Manifest:
    """A THUMOS-like manifest: long videos, a few instances of one (sometimes two) classes,
    segments and one point (uniform inside the segment) per instance; train/val/test splits;
    each video's frame rate drawn from ``fps``."""
    rng = np.random.default_rng(seed)
    classes = tuple(f"action_{i:02d}" for i in range(num_classes))
    videos = []
    for n in range(num_videos):
        total = float(np.round(rng.uniform(*duration), 2))
        rate = float(fps[int(rng.integers(len(fps)))]) if len(fps) > 1 else float(fps[0])
        chosen = [int(rng.integers(num_classes))]
        if rng.random() < second_class:
            chosen.append(int((chosen[0] + 1 + rng.integers(num_classes - 1)) % num_classes))
        segments, points = [], []
        cursor = float(rng.uniform(2, 10))
        for _ in range(int(rng.integers(instances[0], instances[1] + 1))):
            seg_len = float(rng.uniform(*length))
            if cursor + seg_len > total - 2:
                break
            label = classes[chosen[int(rng.integers(len(chosen)))]]
            start, end = round(cursor, 2), round(cursor + seg_len, 2)
            segments.append(Segment(label, start, end))
            points.append(Point(label, round(float(rng.uniform(start, end)), 2)))
            cursor = end + float(rng.uniform(3, 25))
        if not segments:
            start = round(total / 3, 2)
            segments.append(Segment(classes[chosen[0]], start, round(start + 4, 2)))
            points.append(Point(classes[chosen[0]], round(start + 2, 2)))
        labels = tuple(sorted({s.label for s in segments}))
        frac = n / num_videos
        split = "train" if frac < splits[0] else "val" if frac < sum(splits) else "test"
        videos.append(VideoRecord(video_id=f"video_{n:04d}", path=None, split=split,
                                  duration=total, fps=rate, num_frames=int(total * rate),
                                  labels=labels, segments=tuple(segments), points=tuple(points)))
    return Manifest(ManifestMeta(dataset="thumos-like-features", classes=classes), tuple(videos))


def make_features(video: VideoRecord, classes: tuple[str, ...], spec: SyntheticFeatures,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, D)`` float32 features and ``(T,)`` clip-centre timestamps of one video."""
    step = spec.snippet_frames / video.fps if spec.snippet_frames else spec.step
    rng = np.random.default_rng([seed, zlib.crc32(video.video_id.encode())])
    count = max(2, int(video.duration / step))
    times = (np.arange(count) + 0.5) * step
    index = {c: i for i, c in enumerate(classes)}
    amplitudes = [rng.uniform(*spec.amplitude) for _ in video.segments or ()]
    coverage = np.clip(_smooth(np.stack([_coverage(video, times, step)], 1), spec.blur), 0, 1)
    modes = _background_modes(video, times, spec.background_modes, rng)
    weights = STREAM_WEIGHTS if spec.streams == 2 else ((1.0, 1.0),) * spec.streams
    dim = spec.dim // spec.streams
    parts = []
    for stream, (context_w, action_w) in enumerate(weights):
        world = np.random.default_rng([seed, stream] if stream else seed)  # shared by all videos
        parts.append(_stream(video, times, step, world, rng, dim, len(classes), index,
                             amplitudes, coverage, modes, spec, context_w, action_w))
    features = np.concatenate(parts, axis=1)
    if spec.nonnegative:
        features = np.logaddexp(0.0, 3.0 * features) / 3.0
    return features.astype(np.float32), times


def _stream(video: VideoRecord, times: np.ndarray, step: float, world: np.random.Generator,
            rng: np.random.Generator, dim: int, num_classes: int, index: dict[str, int],
            amplitudes: list[float], coverage: np.ndarray, modes: np.ndarray,
            spec: SyntheticFeatures, context_w: float, action_w: float) -> np.ndarray:
    """One stream's ``(T, dim)`` features (the whole vector when ``streams`` is 1)."""
    unique = _unit(world.normal(size=(num_classes, dim)))
    shared = _unit(world.normal(size=((num_classes + 1) // 2, dim)))
    prototypes = _unit(spec.confusion * shared[np.arange(num_classes) // 2]
                       + math.sqrt(1 - spec.confusion**2) * unique)
    scenes = _unit(world.normal(size=(num_classes, dim)))
    action_dir = _unit(world.normal(size=dim))
    idle_dirs = _unit(world.normal(size=(spec.background_modes, dim)))

    count = len(times)
    signal = np.zeros((count, dim))
    context = np.zeros(count)
    for seg, amp in zip(video.segments or (), amplitudes):
        inside = np.clip((np.minimum(times + step / 2, seg.end)
                          - np.maximum(times - step / 2, seg.start)) / step, 0, 1)
        signal += inside[:, None] * (amp * prototypes[index[seg.label]]
                                     + action_w * spec.actionness * action_dir)
        near = np.exp(-np.minimum(np.abs(times - seg.start), np.abs(times - seg.end)) / 6.0)
        context = np.maximum(context, near * (1 - inside))
    signal = _smooth(signal, spec.blur)
    scene = np.zeros(dim)
    for label in video.labels:
        scene += scenes[index[label]]
    background = _unit(rng.normal(size=dim))
    noise = np.zeros((count, dim))
    state = rng.normal(size=dim) * spec.noise
    for t in range(count):
        state = spec.noise_rho * state + math.sqrt(1 - spec.noise_rho**2) * rng.normal(
            size=dim) * spec.noise
        noise[t] = state
    idle = spec.idle * (1 - coverage) * idle_dirs[modes]
    return (spec.magnitude * (signal + context_w * spec.context * (0.3 + context[:, None]) * scene
                              + background + idle) + noise)


def _background_modes(video: VideoRecord, times: np.ndarray, modes: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` the idle mode of each clip: one drawn per stretch between instance starts."""
    if modes == 1:
        return np.zeros(len(times), dtype=int)
    starts = sorted(seg.start for seg in video.segments or ())
    stretch = np.searchsorted(np.asarray(starts), times)  # 0 before the first instance, ...
    return rng.integers(modes, size=len(starts) + 1)[stretch]


def write_store(manifest: Manifest, path: str | Path, spec: SyntheticFeatures,
                seed: int = 0) -> Path:
    """Write the synthetic features of every manifest video to a feature store at ``path``."""
    from extract.store import create_store

    frames = spec.snippet_frames or int(spec.step * 30)
    extractor = {"backbone": "synthetic", "weights_sha256": f"synthetic-seed{seed}",
                 "supervision": "full", "clip_frames": frames, "frame_stride": 1,
                 "clip_step": frames, "fps": None if spec.snippet_frames else 30.0, "crops": 1,
                 "dim": spec.dim, "dtype": "float32"}
    writer = create_store(path, extractor=extractor, manifest_sha256=manifest.sha256())
    for video in manifest.videos:
        feats, times = make_features(video, manifest.classes, spec, seed)
        writer.write_video(video.video_id, feats, times, num_frames=video.num_frames,
                           fps=video.fps, duration=video.duration)
    writer.close()
    return Path(path)


def _coverage(video: VideoRecord, times: np.ndarray, step: float) -> np.ndarray:
    """``(T,)`` fraction of each clip covered by any segment."""
    out = np.zeros(len(times))
    for seg in video.segments or ():
        out = np.maximum(out, np.clip((np.minimum(times + step / 2, seg.end)
                                       - np.maximum(times - step / 2, seg.start)) / step, 0, 1))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _smooth(signal: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return signal
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(signal, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, d], kernel, mode="valid")
                     for d in range(signal.shape[1])], axis=1)
