"""When actions happen: activity scripts and the layout of action instances in a video.

An activity is a script, as in Breakfast: ordered steps (classes), some optional. A video of an
activity keeps the mandatory steps, skips some optional ones, repeats or drops steps until it
has the sampled number of instances, and swaps a few neighbours (people reorder).

Placement ``sequential`` lays instances out in script order with background in between (with
``overlap_prob`` an instance may start inside the previous one, done by another actor);
``independent`` puts each instance anywhere in the video, as Charades' co-occurring actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_manifests.synthetic.spec import SynthSpec, sample_knots


@dataclass(frozen=True)
class Script:
    name: str  # activity name
    steps: tuple[int, ...]  # class indices in order
    optional: tuple[bool, ...]  # per step


@dataclass(frozen=True)
class Instance:
    label: int  # class index
    start: int  # first frame
    end: int  # one past the last frame
    actor: int  # which actor performs it


def make_scripts(spec: SynthSpec, rng: np.random.Generator) -> tuple[Script, ...]:
    """``spec.num_activities`` scripts over the classes; together they use every class."""
    scripts = []
    unused = list(rng.permutation(spec.num_classes))
    for a in range(spec.num_activities):
        length = int(rng.integers(spec.script_steps[0], spec.script_steps[1] + 1))
        length = min(length, spec.num_classes)
        # Draw classes not yet used by any script first, so every class occurs somewhere.
        fresh = [unused.pop() for _ in range(min(length, len(unused)))]
        others = [c for c in rng.permutation(spec.num_classes) if c not in fresh]
        steps = fresh + others[: length - len(fresh)]
        steps = [int(steps[i]) for i in rng.permutation(len(steps))]
        optional = tuple(bool(rng.uniform() < spec.optional_step_prob) for _ in steps)
        scripts.append(Script(name=f"activity-{a:02d}", steps=tuple(steps), optional=optional))
    return tuple(scripts)


def sample_steps(script: Script, count: int, spec: SynthSpec,
                 rng: np.random.Generator) -> list[int]:
    """The class sequence of one video of ``script`` with ``count`` instances."""
    kept = [s for s, opt in zip(script.steps, script.optional)
            if not (opt and rng.uniform() < spec.skip_optional_prob)]
    if not kept:
        kept = [script.steps[int(rng.integers(len(script.steps)))]]
    while len(kept) > count:
        kept.pop(int(rng.integers(len(kept))))
    while len(kept) < count:
        i = int(rng.integers(len(kept)))
        kept.insert(i, kept[i])  # a step done again (twice in a row, as people do)
    for i in range(len(kept) - 1):
        if rng.uniform() < spec.reorder_prob:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept


def layout(labels: list[int], num_frames: int, num_actors: int, spec: SynthSpec,
           rng: np.random.Generator, channels: tuple[frozenset[str], ...]) -> list[Instance]:
    """Place instances of ``labels`` on ``num_frames`` frames and give each an actor.

    ``channels[c]``: what class ``c`` moves (position, angle, scale). Co-occurring instances go
    to different actors, or to one actor when they move disjoint channels (it spins while it
    moves, as a person sits while holding a phone); otherwise the instance is moved.
    """
    n = len(labels)
    min_len = max(1, round(spec.min_instance_s * spec.fps))
    lengths = np.array([sample_knots(spec.coverage, rng) for _ in labels]) * num_frames
    lengths = np.clip(lengths, min_len, spec.max_total_coverage * num_frames)
    if spec.placement == "sequential":
        if spec.fill_fraction > 0:
            lengths *= spec.fill_fraction * num_frames / lengths.sum()
        elif lengths.sum() > spec.max_total_coverage * num_frames:
            lengths *= spec.max_total_coverage * num_frames / lengths.sum()
    lengths = np.clip(np.round(lengths).astype(int), 1, num_frames)
    if spec.placement == "independent":
        # Anywhere in the video (Charades: actions are independent and co-occur); sorted
        # starts keep the script order of the steps.
        u = np.sort(rng.uniform(size=n))
        starts = [int(u[i] * (num_frames - lengths[i])) for i in range(n)]
    else:
        starts = _sequential_starts(lengths, num_frames, spec, rng)
    instances: list[Instance] = []
    for i, label in enumerate(labels):
        length = int(lengths[i])
        for attempt in range(20):
            start = starts[i] if attempt == 0 else _retry_start(
                instances, length, num_frames, spec, rng)
            if start is None:
                break
            actor = _free_actor(instances, start, start + length, channels[label], channels,
                                num_actors, rng)
            if actor is not None:
                instances.append(Instance(label=int(label), start=int(start),
                                          end=int(start + length), actor=actor))
                break
    return instances


def _sequential_starts(lengths: np.ndarray, num_frames: int, spec: SynthSpec,
                       rng: np.random.Generator) -> list[int]:
    """Script order with background gaps; ``overlap_prob`` pulls a start into the previous."""
    n = len(lengths)
    free = max(0, num_frames - int(lengths.sum()))
    gaps = np.floor(rng.dirichlet(np.ones(n + 1)) * free).astype(int)
    starts, t = [], 0
    for i in range(n):
        t += int(gaps[i])
        starts.append(min(t, num_frames - int(lengths[i])))
        t += int(lengths[i])
    for i in range(1, n):
        if spec.overlap_prob > 0 and rng.uniform() < spec.overlap_prob:
            back = rng.uniform(0.2, 0.8) * min(lengths[i], lengths[i - 1])
            previous_end = starts[i - 1] + int(lengths[i - 1])
            starts[i] = max(starts[i - 1] + 1, previous_end - round(back))
    return starts


def _retry_start(placed: list[Instance], length: int, num_frames: int, spec: SynthSpec,
                 rng: np.random.Generator) -> int | None:
    """Another start for an instance that found no actor: anywhere (independent) or after the
    last placed instance (sequential, no overlap); None when it does not fit."""
    if spec.placement == "independent":
        return int(rng.integers(0, num_frames - length + 1))
    start = max((x.end for x in placed), default=0)
    return start if start + length <= num_frames else None


def _free_actor(placed: list[Instance], start: int, end: int, needs: frozenset[str],
                channels: tuple[frozenset[str], ...], num_actors: int,
                rng: np.random.Generator) -> int | None:
    """A random actor idle during [start, end), else one whose concurrent actions move other
    channels; None if there is none."""
    used: list[set[str]] = [set() for _ in range(num_actors)]
    for x in placed:
        if x.start < end and start < x.end:
            used[x.actor] |= channels[x.label]
    idle = [a for a in range(num_actors) if not used[a]]
    if idle:
        return idle[int(rng.integers(len(idle)))]
    compatible = [a for a in range(num_actors) if not used[a] & needs]
    if compatible:
        return compatible[int(rng.integers(len(compatible)))]
    return None
