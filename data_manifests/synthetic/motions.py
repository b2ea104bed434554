"""Action classes of the synthetic benchmark: motion patterns of an object (its "actor").

Every class is one :class:`Motion`: a per-frame change of an object's position, angle and
scale, so a single frame never tells two classes apart (``move-right`` and ``move-left`` look
identical in any one frame). Idle actors perform :func:`idle_step` (slow drift plus jitter):
motion that is no class, so "something moves" is not the same as "an action happens".

Units: positions in frame widths on a torus ([0, 1) wraps around: an object leaving on the right
comes back on the left), angles in radians (positive = clockwise on screen, y points down),
scale as a log factor of the actor's base size. Speeds are per frame.

Two catalogues share the same primitives (translation, rotation, scaling, orbits, waves) but
no class: ``target`` for the long-video benchmarks and ``source`` for the trimmed pre-training
set that stands in for Kinetics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Scale bounds of the grow/shrink sawtooth (log factors of the base size).
_LOG_SCALE_MIN, _LOG_SCALE_MAX = math.log(0.6), math.log(1.6)


@dataclass(frozen=True)
class Motion:
    name: str  # class name
    phrase: str  # verb phrase for sentences: "the red square <phrase>"
    velocity: tuple[float, float] = (0.0, 0.0)  # constant drift (dx, dy), frame widths / frame
    spin: float = 0.0  # rad / frame, > 0 clockwise
    growth: float = 0.0  # log-scale / frame; a sawtooth between 0.6x and 1.6x
    orbit: float = 0.0  # rad / frame of a circular path, > 0 clockwise
    orbit_radius: float = 0.0  # frame widths
    wave: float = 0.0  # amplitude of a triangle wave across the drift (zigzag), frame widths
    swing: float = 0.0  # amplitude of a sine oscillation along `swing_axis`, frame widths
    swing_axis: tuple[float, float] = (1.0, 0.0)
    wobble: float = 0.0  # amplitude of an angle oscillation, rad
    pulse: float = 0.0  # amplitude of a log-scale oscillation
    figure_eight: float = 0.0  # amplitude of a Lissajous 1:2 path, frame widths
    period: int = 10  # frames per cycle of wave / swing / wobble / pulse / figure eight


def channels(motion: Motion) -> frozenset[str]:
    """What a motion changes: "position", "angle" and/or "scale". One actor can perform two
    actions at once only when they change different things (both stay visible)."""
    out = set()
    if any(abs(v) > 0 for v in motion.velocity) or motion.orbit or motion.wave or \
            motion.swing or motion.figure_eight:
        out.add("position")
    if motion.spin or motion.wobble:
        out.add("angle")
    if motion.growth or motion.pulse:
        out.add("scale")
    return frozenset(out)


@dataclass
class ActorState:
    x: float  # frame widths, wraps at 1
    y: float
    angle: float  # rad
    log_scale: float  # 0 = base size
    drift_dir: float  # rad, direction of the idle drift (random walk)


def step(state: ActorState, motion: Motion, t: int, speed: float, phase: float) -> None:
    """Advance ``state`` by one frame of ``motion``; ``t`` frames since the instance started."""
    dx, dy = motion.velocity
    dx, dy = dx * speed, dy * speed
    w = 2 * math.pi / motion.period
    if motion.orbit:
        a = phase + motion.orbit * speed * t
        r = motion.orbit_radius
        dx += -r * motion.orbit * speed * math.sin(a)
        dy += r * motion.orbit * speed * math.cos(a)
    if motion.wave:
        norm = math.hypot(*motion.velocity) or 1.0
        px, py = -motion.velocity[1] / norm, motion.velocity[0] / norm  # across the drift
        slope = 4 * motion.wave / motion.period * (1 if (t % motion.period) < motion.period / 2
                                                    else -1)
        dx, dy = dx + px * slope, dy + py * slope
    if motion.swing:
        v = motion.swing * w * math.cos(w * t + phase)
        dx, dy = dx + motion.swing_axis[0] * v, dy + motion.swing_axis[1] * v
    if motion.figure_eight:
        a = motion.figure_eight
        dx += a * w * math.cos(w * t)
        dy += a / 2 * 2 * w * math.cos(2 * w * t)
    state.x = (state.x + dx) % 1.0
    state.y = (state.y + dy) % 1.0
    state.angle += motion.spin * speed
    if motion.wobble:
        state.angle += motion.wobble * w * math.cos(w * t)
    if motion.growth:
        state.log_scale += motion.growth * speed
        if state.log_scale > _LOG_SCALE_MAX:
            state.log_scale = _LOG_SCALE_MIN
        elif state.log_scale < _LOG_SCALE_MIN:
            state.log_scale = _LOG_SCALE_MAX
    if motion.pulse:
        state.log_scale += motion.pulse * w * math.cos(w * t)


def idle_step(state: ActorState, rng: np.random.Generator, speed: float, jitter: float) -> None:
    """One frame of background motion: slow wandering drift, jitter, relaxing to base size."""
    state.drift_dir += rng.normal(0.0, 0.15)
    state.x = (state.x + speed * math.cos(state.drift_dir) + rng.normal(0.0, jitter)) % 1.0
    state.y = (state.y + speed * math.sin(state.drift_dir) + rng.normal(0.0, jitter)) % 1.0
    state.angle += rng.normal(0.0, 0.03)
    state.log_scale *= 0.9


def _dir(deg: float, speed: float) -> tuple[float, float]:
    """Velocity for a screen direction in degrees (0 = right, 90 = up)."""
    return (speed * math.cos(math.radians(deg)), -speed * math.sin(math.radians(deg)))


_MOVE = 0.03  # frame widths per frame: ~1 px/frame at 32 px, 7x the idle drift
_SPIN = 0.25  # rad per frame (~14 degrees)
_GROW = 0.06
_ORBIT = 0.35

# Ordered so that any prefix mixes families and holds opposite pairs: a benchmark with few
# classes still needs temporal order (direction), not appearance, to tell classes apart.
TARGET_MOTIONS: tuple[Motion, ...] = (
    Motion("move-right", "moves to the right", velocity=_dir(0, _MOVE)),
    Motion("move-left", "moves to the left", velocity=_dir(180, _MOVE)),
    Motion("rotate-cw", "spins clockwise", spin=_SPIN),
    Motion("rotate-ccw", "spins counterclockwise", spin=-_SPIN),
    Motion("grow", "grows bigger", growth=_GROW),
    Motion("shrink", "shrinks", growth=-_GROW),
    Motion("circle-cw", "circles clockwise", orbit=_ORBIT, orbit_radius=0.12),
    Motion("circle-ccw", "circles counterclockwise", orbit=-_ORBIT, orbit_radius=0.12),
    Motion("move-up", "moves up", velocity=_dir(90, _MOVE)),
    Motion("move-down", "moves down", velocity=_dir(270, _MOVE)),
    Motion("zigzag-right", "zigzags to the right", velocity=_dir(0, 0.02), wave=0.08, period=8),
    Motion("zigzag-left", "zigzags to the left", velocity=_dir(180, 0.02), wave=0.08, period=8),
    Motion("shake-horizontal", "shakes from side to side", swing=0.1, swing_axis=(1.0, 0.0)),
    Motion("shake-vertical", "bobs up and down", swing=0.1, swing_axis=(0.0, 1.0)),
    Motion("move-up-right", "moves up and to the right", velocity=_dir(45, _MOVE)),
    Motion("move-down-left", "moves down and to the left", velocity=_dir(225, _MOVE)),
    Motion("move-up-left", "moves up and to the left", velocity=_dir(135, _MOVE)),
    Motion("move-down-right", "moves down and to the right", velocity=_dir(315, _MOVE)),
    Motion("zigzag-up", "zigzags upwards", velocity=_dir(90, 0.02), wave=0.08, period=8),
    Motion("zigzag-down", "zigzags downwards", velocity=_dir(270, 0.02), wave=0.08, period=8),
)

# Same primitives, different classes: off-axis drifts, rolling (translate + spin), pulsing,
# wobbling, figure eights, diagonal swings.
SOURCE_MOTIONS: tuple[Motion, ...] = (
    *(Motion(f"drift-{name}", f"drifts {name}", velocity=_dir(deg, 0.025))
      for name, deg in (("ene", 22.5), ("nne", 67.5), ("nnw", 112.5), ("wnw", 157.5),
                        ("wsw", 202.5), ("ssw", 247.5), ("sse", 292.5), ("ese", 337.5))),
    Motion("roll-right", "rolls to the right", velocity=_dir(0, 0.02), spin=_SPIN),
    Motion("roll-left", "rolls to the left", velocity=_dir(180, 0.02), spin=-_SPIN),
    Motion("pulse", "pulses", pulse=0.3, period=8),
    Motion("wobble", "wobbles", wobble=0.6, period=8),
    Motion("figure-eight", "traces a figure eight", figure_eight=0.1, period=16),
    Motion("swing-diagonal", "swings diagonally", swing=0.1,
           swing_axis=(math.sqrt(0.5), math.sqrt(0.5))),
)

CATALOGUES: dict[str, tuple[Motion, ...]] = {"target": TARGET_MOTIONS, "source": SOURCE_MOTIONS}
