"""Post-processing: proposals, OIC scoring, NMS and soft-NMS on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from downstream.tal.postprocess import PostprocessConfig, detect, nms, proposals, soft_nms


def test_nms_keeps_the_best_of_overlapping_segments():
    segments = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 4.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # [1, 10] overlaps [0, 10] with IoU 0.9 > 0.5; [0, 4] has IoU 0.4 -> kept.
    assert nms(segments, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(segments, scores, 0.95).tolist() == [0, 1, 2, 3]


def test_nms_ties_keep_input_order():
    segments = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert nms(segments, np.array([0.5, 0.5]), 0.5).tolist() == [0]


def test_soft_nms_decays_overlapping_scores():
    segments = np.array([[0.0, 10.0], [0.0, 5.0], [20.0, 30.0]])
    scores = np.array([0.9, 0.8, 0.5])
    keep, kept = soft_nms(segments, scores, sigma=0.5, min_score=0.0)
    decayed = 0.8 * math.exp(-(0.5**2) / 0.5)  # IoU([0, 5], [0, 10]) = 0.5 -> 0.485
    assert keep.tolist() == [0, 2, 1]  # 0.485 now ranks below the untouched 0.5
    assert kept.tolist() == pytest.approx([0.9, 0.5, decayed])
    keep, _ = soft_nms(segments, scores, sigma=0.5, min_score=0.49)
    assert keep.tolist() == [0, 2]


def test_proposals_are_runs_above_each_threshold_scored_by_oic():
    cas = np.array([0.0, 0.0, 0.9, 0.9, 0.4, 0.0, 0.0, 0.0])
    props = proposals(cas, score=0.5, thresholds=(0.3, 0.8), delta=0.25, gamma=0.2)
    runs = sorted((s, e) for _, s, e in props)
    assert runs == [(2, 3), (2, 4)]
    by_run = {(s, e): score for score, s, e in props}
    # [2, 4]: inner 2.2 / 3; flank int(0.75 * 3) clips to snippet 1 (0.0) only; + 0.2 * 0.5.
    assert by_run[(2, 4)] == pytest.approx((2.2 / 3) - 0.0 + 0.2 * 0.5)


def test_detect_turns_snippets_into_seconds_and_filters_classes():
    timestamps = np.arange(8) + 0.5  # clips of 1 s
    cas = np.zeros((8, 3))
    cas[2:5, 1] = 0.9
    cas[5:7, 2] = 0.9
    video_scores = np.array([0.05, 0.8, 0.05])
    found = detect(video_scores, cas, timestamps, ("a", "b", "c"), PostprocessConfig())
    assert {d[0] for d in found} == {"b"}  # c is below the class threshold
    best = found[0]
    assert best[2:] == pytest.approx((2.0, 5.0))
    soft = detect(video_scores, cas, timestamps, ("a", "b", "c"),
                  PostprocessConfig(suppression="soft-nms"))
    assert soft[0][2:] == pytest.approx((2.0, 5.0))
    none = detect(np.array([0.01, 0.02, 0.03]), cas, timestamps, ("a", "b", "c"),
                  PostprocessConfig())
    assert {d[0] for d in none} == {"c"}  # the best class always passes
