"""`SynthSpec`: every knob of the synthetic benchmark, one frozen dataclass.

Distributions are given as *quantile knots*: a tuple ``(q0, q1, ..., qn)`` read as the values at
evenly spaced probabilities 0, 1/n, ..., 1 with linear interpolation in between (two knots = a
uniform range). Presets copy measured quantiles of the real datasets this way; a sweep can
override them with ``--set coverage=[0.03,0.15]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_manifests.config import ConfigError, from_dict, to_dict
from data_manifests.synthetic.motions import CATALOGUES
from data_manifests.synthetic.render import LOOKS


@dataclass(frozen=True)
class SynthSpec:
    name: str = "custom"  # written into the manifest's dataset name: "synthetic-<name>"
    videos_per_split: tuple[int, ...] = (8, 2, 2)  # number of videos in train, val, test
    duration_s: tuple[float, ...] = (10.0, 20.0)  # video length in seconds (quantile knots)
    fps: float = 8.0  # frames per second of the rendered mp4
    frame_size: int = 32  # square frames, pixels (even: H.264 4:2:0 needs it)
    motions: str = "target"  # class catalogue (motions.CATALOGUES): "target" | "source"
    num_classes: int = 4  # the first N motions of the catalogue are the classes
    trimmed: bool = False  # one action covering each whole video (the `source` pre-training set)
    num_activities: int = 2  # scripts (complex activities); a video follows one script
    script_steps: tuple[int, int] = (2, 4)  # steps per script, min and max (inclusive)
    optional_step_prob: float = 0.3  # chance that a script step is optional
    skip_optional_prob: float = 0.5  # chance that a video skips an optional step
    reorder_prob: float = 0.15  # chance that a video swaps two neighbouring steps
    actions_per_video: tuple[float, ...] = (2.0, 4.0)  # action instances per video (quantile knots)
    coverage: tuple[float, ...] = (0.1, 0.3)  # one instance's length / video length (quantile knots)
    min_instance_s: float = 1.0  # instances are at least this long (seconds)
    max_total_coverage: float = 0.9  # sequential: instances shrink together to cover at most this
    fill_fraction: float = 0.0  # sequential, if > 0: instances rescaled to cover exactly this
    # fraction of the video (Breakfast: segments tile the video except silence at the ends)
    placement: str = "sequential"  # "sequential": script order, background between instances;
    # "independent": each instance anywhere (Charades-like co-occurrence)
    overlap_prob: float = 0.0  # sequential: chance an instance starts inside the previous one
    actors_per_video: tuple[int, int] = (2, 3)  # objects on screen, min and max (inclusive)
    actor_size: float = 0.22  # actor base size, frame widths
    context_strength: float = 0.5  # P(scene = the activity's home scene); else a random scene
    num_scenes: int = 6  # distinct scene backgrounds
    action_speed: float = 1.0  # multiplier of every action's motion speed
    idle_speed: float = 0.004  # drift of idle actors, frame widths per frame (distractor motion)
    idle_jitter: float = 0.004  # std of idle actors' per-frame position jitter, frame widths
    pixel_noise: float = 4.0  # std of per-pixel Gaussian noise, 0-255 scale
    look: str = "target"  # palette, shapes and texture family (render.LOOKS)
    gop: int = 8  # H.264 keyframe interval in frames (short: cheap random clip reads)
    crf: int = 12  # x264 constant rate factor (lower = better quality, larger files)

    def __post_init__(self) -> None:
        def bad(name: str, message: str) -> None:
            raise ConfigError(f"SynthSpec {self.name!r}: {name}={getattr(self, name)!r}: {message}")

        if len(self.videos_per_split) != 3 or min(self.videos_per_split) < 0 or \
                sum(self.videos_per_split) < 1:
            bad("videos_per_split", "need three counts >= 0 (train, val, test), not all 0")
        if self.frame_size < 16 or self.frame_size % 2:
            bad("frame_size", "must be an even number >= 16")
        if self.fps <= 0:
            bad("fps", "must be positive")
        for name in ("duration_s", "actions_per_video", "coverage"):
            knots = getattr(self, name)
            if len(knots) < 2 or any(b < a for a, b in itertools.pairwise(knots)):
                bad(name, "need >= 2 non-decreasing quantile knots")
        if min(self.duration_s) <= 0:
            bad("duration_s", "must be positive")
        if not (0 < min(self.coverage) and max(self.coverage) <= 1):
            bad("coverage", "fractions must lie in (0, 1]")
        if min(self.actions_per_video) < 1:
            bad("actions_per_video", "need at least one action per video")
        for name in ("context_strength", "overlap_prob", "optional_step_prob",
                     "skip_optional_prob", "reorder_prob", "max_total_coverage",
                     "fill_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must lie in [0, 1]")
        if self.script_steps[0] < 1 or self.script_steps[1] < self.script_steps[0]:
            bad("script_steps", "need 1 <= min <= max")
        if self.actors_per_video[0] < 1 or self.actors_per_video[1] < self.actors_per_video[0]:
            bad("actors_per_video", "need 1 <= min <= max")
        if self.num_classes < 1 or self.num_activities < 1 or self.num_scenes < 1:
            bad("num_classes", "classes, activities and scenes must be >= 1")
        if self.placement not in ("sequential", "independent"):
            bad("placement", "choose 'sequential' or 'independent'")
        if self.gop < 1:
            bad("gop", "must be >= 1")
        if self.motions not in CATALOGUES:
            bad("motions", f"unknown motion catalogue; known: {sorted(CATALOGUES)}")
        if self.num_classes > len(CATALOGUES[self.motions]):
            bad("num_classes", f"the {self.motions!r} catalogue has "
                               f"{len(CATALOGUES[self.motions])} motions")
        if self.look not in LOOKS:
            bad("look", f"unknown look; known: {sorted(LOOKS)}")


def with_overrides(spec: SynthSpec, overrides: Mapping[str, Any] | None) -> SynthSpec:
    """``spec`` with fields replaced; unknown fields and wrong types raise ConfigError."""
    if not overrides:
        return spec
    raw = to_dict(spec)
    raw.update(overrides)
    return from_dict(SynthSpec, raw, source=f"overrides of preset {spec.name!r}")


def sample_knots(knots: tuple[float, ...], rng: np.random.Generator) -> float:
    """One draw from the distribution given by evenly spaced quantile knots."""
    u = rng.uniform(0.0, 1.0)
    probs = np.linspace(0.0, 1.0, len(knots))
    return float(np.interp(u, probs, knots))


def knots_mean(knots: tuple[float, ...]) -> float:
    """Mean of the piecewise-uniform distribution given by quantile knots."""
    k = np.asarray(knots, dtype=float)
    return float(np.mean((k[1:] + k[:-1]) / 2))
