"""Losses and selection rules of the localization methods against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from downstream.tal.asl import generalized_cross_entropy, positive_set, selection_scores
from downstream.tal.lacp import (
    completeness,
    feature_contrast,
    optimal_sequence,
    point_focal_loss,
    pseudo_background,
)
from downstream.tal.layers import outer_inner_contrast, topk_mask, topk_mean, video_cross_entropy
from downstream.tal.rskp import (
    affinity,
    attention_normalisation_loss,
    bipartite_random_walk,
    bipartite_random_walk_iterative,
    distillation_loss,
    em_attention,
)


def test_topk_selection_respects_k_and_mask():
    scores = torch.tensor([[[0.1], [0.9], [0.5], [0.7], [0.95]]])
    mask = torch.tensor([[True, True, True, True, False]])  # the 0.95 is padding
    chosen = topk_mask(scores, mask, torch.tensor([2]))
    assert chosen[0, :, 0].tolist() == [False, True, False, True, False]
    # k = valid_T // 2 = 2 -> mean of 0.9 and 0.7
    assert topk_mean(scores, mask, 2).item() == pytest.approx(0.8)


def test_asl_selection_and_positive_set_follow_the_paper_toy_example():
    # T = 4, C = 2, k = 2; h = 0.5 a + 0.5 s.
    a = torch.tensor([[[1.0], [0.0], [0.0], [1.0]]])
    s = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.2, 0.0], [0.0, 0.0]]])
    h = selection_scores(a, s, 0.5)
    assert h[0, :, 0].tolist() == pytest.approx([0.5, 0.5, 0.1, 0.5])
    chosen = topk_mask(h, torch.ones(1, 4, dtype=torch.bool), torch.tensor([2]))
    # Class 1: h = [1.0, 0, 0, 0.5] -> {0, 3}; class 0 ties at 0.5 broken by sort order.
    assert chosen[0, :, 1].tolist() == [True, False, False, True]
    positive = positive_set(chosen, torch.tensor([[0.0, 1.0]]))
    assert positive[0].tolist() == [True, False, False, True]


def test_generalized_cross_entropy_by_hand():
    probs = torch.tensor([[0.8, 0.3, 0.1, 0.5]])
    positive = torch.tensor([[True, True, False, False]])
    mask = torch.tensor([[True, True, True, False]])  # the last snippet is padding
    q = 0.7
    pos = ((1 - 0.8**q) / q + (1 - 0.3**q) / q) / 2
    neg = (1 - 0.9**q) / q
    assert generalized_cross_entropy(probs, positive, mask, q).item() == pytest.approx(pos + neg)


def test_generalized_cross_entropy_tends_to_cross_entropy_as_q_vanishes():
    probs = torch.tensor([[0.8, 0.2]])
    positive = torch.tensor([[True, False]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    value = generalized_cross_entropy(probs, positive, mask, 1e-4).item()
    assert value == pytest.approx(-2 * math.log(0.8), rel=1e-3)


def test_video_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [0.25, 0.75]
    assert video_cross_entropy(logits, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(
        -math.log(0.75))
    both = video_cross_entropy(logits, torch.tensor([[1.0, 1.0]])).item()
    assert both == pytest.approx(-(math.log(0.25) + math.log(0.75)) / 2)


def test_random_walk_closed_form_is_the_limit_of_the_iteration():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    x = x * mask[..., None]
    mu = em_attention(x, torch.randn(2, 3, 5, dtype=torch.float64), mask, 2, 5.0)
    z = affinity(x, mu, mask, 5.0)
    closed = bipartite_random_walk(x, mu, z, 0.5)
    iterated = bipartite_random_walk_iterative(x, mu, z, 0.5, steps=200)
    torch.testing.assert_close(closed, iterated, atol=1e-9, rtol=1e-9)
    one_step = bipartite_random_walk_iterative(x, mu, z, 0.5, steps=1)
    assert not torch.allclose(closed, one_step)


def test_affinity_rows_sum_to_one_and_padding_is_zero():
    x = torch.randn(1, 4, 3)
    mask = torch.tensor([[True, True, True, False]])
    z = affinity(x, torch.randn(1, 2, 3), mask, 5.0)
    assert z[0, :3].sum(-1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert z[0, 3].abs().sum() == 0


def test_distillation_and_attention_losses_by_hand():
    student = torch.tensor([[[0.0, 0.0]]])  # log softmax = log 0.5 each
    teacher = torch.tensor([[[0.25, 0.75]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    assert distillation_loss(student, teacher, mask).item() == pytest.approx(math.log(2))
    att = torch.tensor([[0.9, 0.1, 0.6, 0.2, 0.8, 0.3, 0.7, 0.4]])
    # k = 8 // 4 = 2: bottom mean 0.15, top mean 0.85
    assert attention_normalisation_loss(att, torch.ones(1, 8, dtype=torch.bool), 4).item() == \
        pytest.approx(0.15 - 0.85)


def test_outer_inner_contrast_by_hand():
    seq = np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.9, 0.2, 0.1])
    # [2, 5]: inner 0.825; length 4 -> one outer snippet each side (1 and 6): 0.2
    assert outer_inner_contrast(seq, 2, 5) == pytest.approx(0.825 - 0.2)
    assert outer_inner_contrast(seq, 0, 7) == pytest.approx(seq.mean())  # no outer region
    value = outer_inner_contrast(torch.tensor(seq, requires_grad=True), 2, 5)
    value.backward()


def test_optimal_sequence_on_a_hand_made_score_sequence():
    scores = np.array([0.1, 0.1, 0.8, 0.9, 0.9, 0.9, 0.1, 0.1, 0.6, 0.9, 0.1, 0.1])
    blocked = np.zeros(12, dtype=bool)
    # [2, 5]: inner 0.875 - outer 0.1 (snippets 1, 6) = 0.775 beats [2, 4] (0.767) and
    # [1, 5] (0.62).
    assert optimal_sequence(scores, [3], blocked) == [(2, 5)]
    # Two points: two separate instances, each complete.
    assert optimal_sequence(scores, [4, 9], blocked) == [(2, 5), (8, 9)]
    # A blocked snippet (pseudo background) cuts the instance.
    blocked[5] = True
    assert optimal_sequence(scores, [3], blocked) == [(2, 4)]


def test_pseudo_background_points():
    background = np.array([0.2, 0.97, 0.1, 0.3, 0.5, 0.96, 0.99, 0.1, 0.4])
    out = pseudo_background(background, [2, 7], threshold=0.95)
    # the official select_seed: before 2, from the start to the last sure one (0.97 at 1);
    # between 2 and 7, the span of the sure ones (5, 6); after 7, none sure: from the most
    # background-like one (8) to the end.
    assert np.flatnonzero(out).tolist() == [0, 1, 5, 6, 8]
    one_sure = pseudo_background(np.array([0.1, 0.2, 0.97, 0.3, 0.1]), [0, 4], threshold=0.95)
    assert np.flatnonzero(one_sure).tolist() == [2]  # fewer than two sure: the single best


def test_point_focal_loss_by_hand():
    probs = torch.tensor([[[0.8, 0.1]]])
    target = torch.tensor([[[1.0, 0.0]]])
    where = torch.tensor([[True]])
    expected = (0.2**2) * -math.log(0.8) + (0.1**2) * -math.log(0.9)
    assert point_focal_loss(probs, target, where, 2.0).item() == pytest.approx(expected, rel=1e-5)


def test_completeness_is_one_for_a_perfect_score_sequence():
    seq = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0], dtype=np.uint8)
    perfect = torch.tensor(seq, dtype=torch.float32)
    assert completeness(perfect, seq, 0.25).item() == pytest.approx(1.0)
    flat = torch.full((10,), 0.5)
    # Runs [0, 2] (no outer snippet: 0.5), [3, 6] (0.5 - 0.5), [7, 9] (0.5 - 0.5 of snippet 6).
    assert completeness(flat, seq, 0.25).item() == pytest.approx(0.5 / 3)


def test_feature_contrast_prefers_similar_action_segments():
    seq = np.array([0, 1, 1, 0, 1, 1, 0], dtype=np.uint8)
    act, bg = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    good = torch.stack([bg, act, act, bg, act, act, bg])
    bad = torch.stack([act, act, act, act, bg, bg, act])
    assert feature_contrast(good, seq, 0.1) < feature_contrast(bad, seq, 0.1)
    assert feature_contrast(good, np.array([0, 1, 1, 0], dtype=np.uint8), 0.1) is None
