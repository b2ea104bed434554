"""LACP's optimal sequence search as its official code runs it (search.py, decode.py and
utils.select_seed of Pilhyeon/Learning-Action-Completeness-from-Points), written from reading
it: a beam search over whole action / background sequences of one class.

* Seeds: the annotated points and *pseudo action points*, grown outward from each point
  while the background score stays <= 0.1 and no background seed is reached
  (:func:`pseudo_action_points`); background seeds from :func:`~downstream.tal.lacp.
  pseudo_background`, plus the other classes' action seeds.
* Transcript: consecutive action seeds form one action segment; background segments lie
  between them, and at the ends where background seeds are (an action with no background seed
  before it must start at the first snippet, with none after it run to the last). Each segment
  must cover its own seeds and end before the next segment's first seed.
* Decoding, snippet by snippet: every hypothesis stays in its segment or starts the next one
  where the constraints allow; a hypothesis scores the running mean outer-inner contrast of
  its finished segments (action scores for actions, 1 - scores for background). After each
  snippet, hypotheses below ``prune`` (0.1) are dropped (the best is always kept) and at most
  ``budget`` (25, ties kept) survive. The answer is the surviving sequence with the highest mean
  contrast over all its action and background runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from downstream.tal.layers import outer_inner_contrast


def pseudo_action_points(points: np.ndarray, background_score: np.ndarray,
                         background: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """``(T, K)`` action seeds: ``points (T, K)`` 0/1 plus, next to each point, the run of
    snippets outward whose ``background_score`` is <= ``threshold`` and that are not in
    ``background (T,)``; each copies its point's classes. Only the outer side of the first and
    last point and both sides of every gap between points grow (as ``select_seed`` does)."""
    seeds = points.astype(np.uint8).copy()
    where = np.flatnonzero(points.max(1) > 0)
    if not len(where):
        return seeds
    length = len(background_score)

    def grow(start: int, stop: int, step: int, source: int) -> None:
        for j in range(start, stop, step):
            if background_score[j] > threshold or background[j]:
                return
            seeds[j] = np.maximum(seeds[j], points[source])

    grow(where[0] - 1, -1, -1, where[0])
    grow(where[-1] + 1, length, 1, where[-1])
    for left, right in itertools.pairwise(where):
        if right - left > 1:
            grow(left + 1, right, 1, left)
            grow(right - 1, left, -1, right)
    return seeds


def transcript_and_ranges(action: np.ndarray, blocked: np.ndarray
                          ) -> tuple[list[int], list[tuple[int, int]]] | None:
    """The segment labels (1 action, 0 background) and, per segment, the snippets its seeds
    span, plus the end's ``(T, T)``; ``action``/``blocked`` ``(T,)`` bool. None when the seeds
    give no consistent transcript (the official code would stop on an assertion)."""
    length = len(action)
    seeds = np.flatnonzero(action)
    background = blocked & ~action
    first = int(seeds[0])
    if first > 0 and background[:first].any():
        background[: int(np.flatnonzero(background[:first])[-1]) + 1] = True
        transcript, actions = [0, 1], [[first, first]]
    else:  # nothing says where the background before it is: the action starts the video
        transcript, actions = [1], [[-1 if first > 0 else first, first]]
    previous = first
    for seed in map(int, seeds[1:]):
        if seed - previous > 1:
            transcript += [0, 1]
            actions.append([seed, seed])
            gap = np.flatnonzero(background[previous + 1:seed]) + previous + 1
            if len(gap):
                background[gap[0]:gap[-1] + 1] = True
        else:
            actions[-1][1] = seed
        previous = seed
    if previous < length - 1:
        after = np.flatnonzero(background[previous + 1:]) + previous + 1
        if len(after):
            background[after[0]:] = True
            transcript.append(0)
        else:
            actions[-1][1] = length - 1
    groups = _runs_of(np.flatnonzero(background))
    ranges: list[tuple[int, int]] = []
    for start, end in actions:
        before = [g for g in groups if g[0] < start]
        groups = groups[len(before):]
        if before:
            ranges.append((min(g[0] for g in before), before[-1][1]))
        ranges.append((start, end))
    if groups:
        ranges.append((groups[0][0], groups[-1][1]))
    ranges.append((length, length))
    return (transcript, ranges) if len(transcript) == len(ranges) - 1 else None


@dataclass
class _Hypothesis:
    segment: int  # index into the transcript of the segment it is in
    starts: tuple[int, ...]  # first snippet of each segment so far
    score: float  # running mean contrast of its finished segments (inf before the first)
    finished: int


def beam_sequence(scores: np.ndarray, transcript: list[int], ranges: list[tuple[int, int]],
                  budget: int = 25, prune: float = 0.1, delta: float = 0.25) -> np.ndarray:
    """``(T,)`` uint8: the best action (1) / background (0) sequence of one class under the
    transcript and ranges of :func:`transcript_and_ranges`; ``scores (T,)`` action scores."""
    length = len(scores)
    by_label = (1.0 - scores, scores)
    hyps = [_Hypothesis(0, (0,), float("inf"), 0)]
    for t in range(1, length):
        grown = []
        for h in hyps:
            can_move = h.segment + 1 < len(transcript)
            nxt, current = ranges[h.segment + 1], ranges[h.segment]
            if t == nxt[0]:  # the next segment's first seed: it must have started
                if can_move:
                    grown.append(_move(h, t, transcript, by_label, delta))
                continue
            grown.append(h)  # stay (the only choice while the segment's own seeds run on)
            if t > current[1] and can_move:
                grown.append(_move(h, t, transcript, by_label, delta))
        hyps = _prune(grown, prune, budget) if grown else hyps
    best, best_score = None, -np.inf
    for h in hyps:
        labels = _labels(h, transcript, length)
        contrasts = [outer_inner_contrast(by_label[value], s, e, delta)
                     for value, s, e in _label_runs(labels)]
        score = float(np.mean(contrasts))
        if score >= best_score:
            best, best_score = labels, score
    return best


def _move(h: _Hypothesis, t: int, transcript: list[int], by_label: tuple[np.ndarray, ...],
          delta: float) -> _Hypothesis:
    """``h`` with its current segment ending at ``t - 1`` and the next starting at ``t``."""
    contrast = float(outer_inner_contrast(by_label[transcript[h.segment]], h.starts[-1], t - 1,
                                          delta))
    score = (contrast if h.finished == 0
             else (h.score * h.finished + contrast) / (h.finished + 1))
    return _Hypothesis(h.segment + 1, (*h.starts, t), score, h.finished + 1)


def _prune(hyps: list[_Hypothesis], threshold: float, budget: int) -> list[_Hypothesis]:
    ranked = sorted(hyps, key=lambda h: h.score, reverse=True)
    kept = [ranked[0]] + [h for h in ranked[1:] if h.score >= threshold]
    if len(kept) > budget:
        cutoff = kept[budget - 1].score
        kept = [h for h in kept if h.score >= cutoff]
    return kept


def _labels(h: _Hypothesis, transcript: list[int], length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.uint8)
    bounds = (*h.starts, length)
    for segment, (start, stop) in enumerate(itertools.pairwise(bounds)):
        out[start:stop] = transcript[segment]
    return out


def _label_runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges - 1, [len(labels) - 1]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def _runs_of(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs ``[(first, last)]`` of sorted indices."""
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    firsts = np.concatenate([[indices[0]], indices[breaks + 1]])
    lasts = np.concatenate([indices[breaks], [indices[-1]]])
    return [(int(a), int(b)) for a, b in zip(firsts, lasts)]
