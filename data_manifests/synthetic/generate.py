"""Render a synthetic long-video benchmark: mp4 files plus a manifest with every annotation type.

Per video, the plan (activity, scene, actors, action instances, points, sentences) is drawn from
its own random stream ``(seed, split, index)`` and the pixels from a second one, so a video
does not depend on how many others are made, and an interrupted run resumes where it stopped:
each mp4 is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_manifests.config import ConfigError, to_dict
from data_manifests.schema import (
    Manifest,
    ManifestMeta,
    Point,
    Segment,
    Sentence,
    VideoRecord,
    write_manifest,
)
from data_manifests.synthetic.encode import write_mp4
from data_manifests.synthetic.motions import (
    CATALOGUES,
    ActorState,
    Motion,
    channels,
    idle_step,
    step,
)
from data_manifests.synthetic.render import LOOKS, actor_alpha, make_scene, render_background
from data_manifests.synthetic.spec import SynthSpec, sample_knots, with_overrides
from data_manifests.synthetic.timeline import Instance, Script, layout, make_scripts, sample_steps

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the same spec and seed would render different videos
SPLITS = ("train", "val", "test")
SPEC_FILE = "synth_spec.json"  # spec + seed of the videos in this folder (for resuming)
_CHUNK = 64  # frames rendered at once: memory does not grow with the video's length


@dataclass(frozen=True)
class Actor:
    shape: str
    color: str


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    split: str
    num_frames: int
    activity: str | None
    scene: int
    actors: tuple[Actor, ...]
    instances: tuple[Instance, ...]
    points: tuple[float, ...]  # one time (s) per instance, inside it
    glances: tuple[float, ...]  # one time (s) per instance, inside it (sentence glance)


def resolve_spec(preset: str | SynthSpec, overrides: Mapping[str, Any] | None = None,
                 num_videos: int | None = None) -> SynthSpec:
    """Preset name or spec, with field overrides and an optional total number of videos."""
    from data_manifests.synthetic import PRESETS

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(f"unknown synthetic preset {preset!r}; known: {sorted(PRESETS)}")
        spec = PRESETS[preset]
    else:
        spec = preset
    spec = with_overrides(spec, overrides)
    if num_videos is not None:
        spec = with_overrides(spec, {"videos_per_split": split_counts(spec, num_videos)})
    return spec


def split_counts(spec: SynthSpec, total: int) -> list[int]:
    """``total`` videos divided in the spec's train/val/test proportions; a split the spec
    has keeps at least one video when ``total`` allows."""
    if total < 1:
        raise ConfigError(f"--videos must be >= 1, got {total}")
    weights = np.asarray(spec.videos_per_split, dtype=float)
    counts = np.floor(weights / weights.sum() * total).astype(int)
    if total >= np.count_nonzero(weights):
        counts = np.where(weights > 0, np.maximum(counts, 1), 0)
    while counts.sum() > total:
        counts[int(np.argmax(counts))] -= 1
    counts[0] += total - counts.sum()
    return [int(c) for c in counts]


def generate_benchmark(preset: str | SynthSpec, out_dir: str | Path, *, seed: int = 0,
                       num_videos: int | None = None,
                       overrides: Mapping[str, Any] | None = None,
                       progress: bool = True) -> Path:
    """Render a benchmark into ``out_dir`` (meta.json, videos.jsonl, videos/*.mp4); returns it.

    Re-running into the same folder with the same spec and seed reuses finished videos.
    """
    spec = resolve_spec(preset, overrides, num_videos)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    _claim_folder(out, spec, seed)
    motions = CATALOGUES[spec.motions][: spec.num_classes]
    scripts, plans = plan_benchmark(spec, seed)
    for plan in tqdm(plans, desc=f"synth {spec.name}", unit="video", disable=not progress):
        path = out / "videos" / f"{plan.video_id}.mp4"
        if path.exists():
            continue
        tmp = path.with_name(path.name + ".tmp")
        rng = np.random.default_rng([seed, SPLITS.index(plan.split), _index(plan), 1])
        written = write_mp4(tmp, render_frames(plan, spec, motions, rng), fps=spec.fps,
                            size=spec.frame_size, gop=spec.gop, crf=spec.crf)
        assert written == plan.num_frames, (written, plan.num_frames)
        tmp.replace(path)

    write_manifest(_manifest_content(spec, seed, scripts, plans), out)
    return out


def plan_annotations(preset: str | SynthSpec, *, seed: int = 0, num_videos: int | None = None,
                     overrides: Mapping[str, Any] | None = None) -> Manifest:
    """The manifest :func:`generate_benchmark` would write, without rendering any video.

    For statistics and sweeps of the annotation structure (coverage, label noise); the
    records' paths point at videos that do not exist.
    """
    spec = resolve_spec(preset, overrides, num_videos)
    scripts, plans = plan_benchmark(spec, seed)
    meta, videos = _manifest_content(spec, seed, scripts, plans)
    return Manifest(meta, tuple(videos))


def plan_benchmark(spec: SynthSpec, seed: int) -> tuple[tuple[Script, ...], list[VideoPlan]]:
    """Activity scripts and every video's plan, split by split."""
    scripts = make_scripts(spec, np.random.default_rng([seed, 7919]))
    plans = [plan_video(spec, scripts, split, index, seed)
             for split_no, split in enumerate(SPLITS)
             for index in range(spec.videos_per_split[split_no])]
    return scripts, plans


def _manifest_content(spec: SynthSpec, seed: int, scripts: tuple[Script, ...],
                      plans: list[VideoPlan]) -> tuple[ManifestMeta, list[VideoRecord]]:
    motions = CATALOGUES[spec.motions][: spec.num_classes]
    meta = ManifestMeta(
        dataset=f"synthetic-{spec.name}",
        classes=tuple(m.name for m in motions),
        activities=() if spec.trimmed else tuple(s.name for s in scripts),
        fps=spec.fps,
        notes=((f"synthetic benchmark from `weakfeat data synth`, preset {spec.name!r}, seed "
               f"{seed}, generator version {GENERATOR_VERSION}; spec in {SPEC_FILE}"),
               *(() if spec.trimmed else (_describe(s, motions) for s in scripts))))
    return meta, [to_record(p, spec, motions) for p in plans]


def plan_video(spec: SynthSpec, scripts: tuple[Script, ...], split: str, index: int,
               seed: int) -> VideoPlan:
    """Annotations of one video, from its own random stream."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 0])
    num_frames = max(2, round(sample_knots(spec.duration_s, rng) * spec.fps))
    look = LOOKS[spec.look]
    num_actors = int(rng.integers(spec.actors_per_video[0], spec.actors_per_video[1] + 1))
    colors = list(look.actor_colors)
    picks = rng.permutation(len(colors))[:num_actors]  # distinct colours name the actors
    actors = tuple(Actor(shape=look.shapes[int(rng.integers(len(look.shapes)))],
                         color=colors[int(c)]) for c in picks)
    if spec.trimmed:
        activity = None
        scene = int(rng.integers(spec.num_scenes))
        instances = (Instance(label=int(rng.integers(spec.num_classes)), start=0,
                              end=num_frames, actor=0),)
    else:
        a = int(rng.integers(len(scripts)))
        activity = scripts[a].name
        home = a % spec.num_scenes
        scene = home if rng.uniform() < spec.context_strength else int(
            rng.integers(spec.num_scenes))
        count = max(1, round(sample_knots(spec.actions_per_video, rng)))
        labels = sample_steps(scripts[a], count, spec, rng)
        moves = tuple(channels(m) for m in CATALOGUES[spec.motions][: spec.num_classes])
        instances = tuple(layout(labels, num_frames, num_actors, spec, rng, moves))
    points = tuple(_inside(inst, spec.fps, rng) for inst in instances)
    glances = tuple(_inside(inst, spec.fps, rng) for inst in instances)
    return VideoPlan(video_id=f"{split}-{index:05d}", split=split, num_frames=num_frames,
                     activity=activity, scene=scene, actors=actors, instances=instances,
                     points=points, glances=glances)


def to_record(plan: VideoPlan, spec: SynthSpec, motions: tuple[Motion, ...]) -> VideoRecord:
    fps = spec.fps
    order = sorted(range(len(plan.instances)),
                   key=lambda i: (plan.instances[i].start, plan.instances[i].end))
    segments, points, sentences = [], [], []
    for i in order:
        inst = plan.instances[i]
        name = motions[inst.label].name
        start, end = inst.start / fps, inst.end / fps
        segments.append(Segment(label=name, start=start, end=end))
        points.append(Point(label=name, time=plan.points[i]))
        actor = plan.actors[inst.actor]
        text = f"the {actor.color} {actor.shape} {motions[inst.label].phrase}"
        sentences.append(Sentence(text=text, start=start, end=end, glance=plan.glances[i]))
    return VideoRecord(
        video_id=plan.video_id, path=f"videos/{plan.video_id}.mp4", split=plan.split,
        duration=plan.num_frames / fps, fps=fps, num_frames=plan.num_frames,
        labels=tuple(sorted({s.label for s in segments})), segments=tuple(segments),
        points=tuple(points), activity=plan.activity, sentences=tuple(sentences))


def render_frames(plan: VideoPlan, spec: SynthSpec, motions: tuple[Motion, ...],
                  rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Chunks of frames ``(T, H, W, 3)`` uint8 of one video, ``_CHUNK`` frames at a time."""
    look = LOOKS[spec.look]
    size = spec.frame_size
    background = render_background(make_scene(look, plan.scene, rng), look.texture, size)
    tracks = simulate(plan, spec, motions, rng)  # (A, 4, T): x, y, angle, log_scale
    colors = np.array([look.actor_colors[a.color] for a in plan.actors], dtype=np.float32)
    for t0 in range(0, plan.num_frames, _CHUNK):
        t1 = min(plan.num_frames, t0 + _CHUNK)
        frames = np.broadcast_to(background, (t1 - t0, size, size, 3)).copy()
        for a, actor in enumerate(plan.actors):
            x, y, angle, log_scale = tracks[a, :, t0:t1]
            alpha = actor_alpha(actor.shape, spec.actor_size, x, y, angle, log_scale,
                                size)[..., None]  # (T, H, W, 1)
            frames = frames * (1 - alpha) + colors[a] * alpha
        if spec.pixel_noise > 0:
            frames += rng.normal(0.0, spec.pixel_noise, frames.shape).astype(np.float32)
        yield np.clip(np.round(frames), 0, 255).astype(np.uint8)


def simulate(plan: VideoPlan, spec: SynthSpec, motions: tuple[Motion, ...],
             rng: np.random.Generator) -> np.ndarray:
    """Actor poses ``(A, 4, T)``: x, y (frame widths), angle (rad), log scale per frame.

    An actor performs every instance assigned to it that covers the frame (concurrent ones
    change different channels, see ``timeline.layout``) and idles when it has none.
    """
    num_actors = len(plan.actors)
    phases = rng.uniform(0, 2 * math.pi, len(plan.instances))
    tracks = np.zeros((num_actors, 4, plan.num_frames))
    for a in range(num_actors):
        own = [(i, x) for i, x in enumerate(plan.instances) if x.actor == a]
        state = ActorState(x=rng.uniform(), y=rng.uniform(), angle=rng.uniform(0, 2 * math.pi),
                           log_scale=0.0, drift_dir=rng.uniform(0, 2 * math.pi))
        for t in range(plan.num_frames):
            tracks[a, :, t] = (state.x, state.y, state.angle, state.log_scale)
            active = [(i, x) for i, x in own if x.start <= t < x.end]
            if not active:
                idle_step(state, rng, spec.idle_speed, spec.idle_jitter)
            for i, x in active:
                step(state, motions[x.label], t - x.start, spec.action_speed, phases[i])
    return tracks


def _inside(inst: Instance, fps: float, rng: np.random.Generator) -> float:
    """A time (s, rounded to ms) uniformly inside the instance [start, end)."""
    start, end = inst.start / fps, inst.end / fps
    return float(min(max(round(rng.uniform(start, end), 3), start), end))


def _index(plan: VideoPlan) -> int:
    return int(plan.video_id.rsplit("-", 1)[1])


def _describe(script: Script, motions: tuple[Motion, ...]) -> str:
    steps = " > ".join(motions[s].name + ("?" if opt else "")
                       for s, opt in zip(script.steps, script.optional))
    return f"{script.name} script (? = optional): {steps}"


def _claim_folder(out: Path, spec: SynthSpec, seed: int) -> None:
    """Record spec + seed; refuse a folder that holds videos of another spec or seed."""
    record = {"generator_version": GENERATOR_VERSION, "seed": seed, "spec": to_dict(spec)}
    text = json.dumps(record, sort_keys=True, indent=1) + "\n"
    path = out / SPEC_FILE
    if path.exists():
        if path.read_text() != text:
            raise FileExistsError(
                f"{out} holds a synthetic benchmark of another spec or seed (see {path}); "
                "choose another --out folder or delete this one")
        return
    if any((out / "videos").glob("*.mp4")):
        raise FileExistsError(f"{out}/videos holds mp4 files but no {SPEC_FILE}; "
                              "choose another --out folder or delete this one")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
