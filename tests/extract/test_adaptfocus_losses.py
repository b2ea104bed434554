"""Losses Eq. 1, 8, 9 against hand-computed values; W and M pass no gradient."""

import math

import pytest
import torch

from extract.adaptfocus.losses import adaptfocus_loss, bce_loss, noisy_loss


def _nll(p):
    return -math.log(p)


def test_noisy_loss_is_bce_with_video_labels():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = 0.5, 0.75
    y = torch.tensor([[1.0, 0.0]])
    expected = (_nll(0.5) + _nll(1 - 0.75)) / 2  # sum over classes / K, mean over batch
    assert noisy_loss(logits, y).item() == pytest.approx(expected)
    assert bce_loss(logits, y).item() == pytest.approx(expected)


def test_adaptfocus_loss_eq9():
    logits = torch.tensor([[0.0, math.log(3.0), math.log(1 / 3)],
                           [math.log(3.0), 0.0, 0.0]])  # p = [.5, .75, .25], [.75, .5, .5]
    y = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    w = torch.tensor([[2.0, 0.5, 99.0], [99.0, 3.0, 99.0]])  # values on negatives ignored
    m = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    clip0 = 2.0 * _nll(0.5) + 0.0 + _nll(0.75)
    clip1 = _nll(0.25) + 3.0 * _nll(0.5) + _nll(0.5)
    assert adaptfocus_loss(logits, y, w, m).item() == pytest.approx((clip0 + clip1) / 3 / 2)


def test_adaptfocus_with_unit_weights_equals_noisy():
    logits = torch.randn(4, 5)
    y = (torch.rand(4, 5) > 0.5).float()
    ones = torch.ones(4, 5)
    assert adaptfocus_loss(logits, y, ones, ones).item() == pytest.approx(
        noisy_loss(logits, y).item())


def test_no_gradient_through_weights_and_mask():
    logits = torch.randn(3, 4, requires_grad=True)
    w = torch.rand(3, 4, requires_grad=True)
    m = torch.ones(3, 4, requires_grad=True)
    y = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0]])
    loss = adaptfocus_loss(logits, y, w * 2, m * 1)
    loss.backward()
    assert w.grad is None and m.grad is None
    # The gradient wrt a positive logit is -(1 - p) * W * M / (K B): W scales it, no W' term.
    p = torch.sigmoid(logits.detach())
    expected = torch.where(y > 0, -(1 - p) * (w.detach() * 2), p) / (4 * 3)
    assert torch.allclose(logits.grad, expected, atol=1e-6)
