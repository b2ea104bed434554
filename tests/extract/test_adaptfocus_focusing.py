"""Action Focusing weights (Eq. 5, S1-S3) and the Clip Focusing mask (Eq. 7), by hand."""

import math

import pytest
import torch

from extract.adaptfocus.focusing import WEIGHTINGS, clip_mask, weighting


def _w(name, p, a, **kw):
    return weighting(name, torch.tensor([p], dtype=torch.float64),
                     torch.tensor([a], dtype=torch.float64), **kw).item()


def test_exponential_defaults_follow_eq5():
    # a = 0.8 -> a_hat = 0.6 (theta 0.75); p = 0.9 >= 0.6: 5 * e^0.3
    assert _w("exponential", 0.9, 0.8) == pytest.approx(5 * math.exp(0.3))
    # p = 0.4 < 0.6: e^(-3 * 0.2)
    assert _w("exponential", 0.4, 0.8) == pytest.approx(math.exp(-0.6))
    # p == a_hat takes the upper branch: alpha * e^0
    assert _w("exponential", 0.375, 0.5) == pytest.approx(5.0)


def test_constant_linear_logarithmic_follow_s1_to_s3():
    assert _w("constant", 0.9, 0.8) == pytest.approx(5.0)
    assert _w("constant", 0.4, 0.8) == pytest.approx(0.75)
    assert _w("linear", 0.9, 0.8) == pytest.approx(5 * 1.3)
    assert _w("linear", 0.4, 0.8) == pytest.approx(1 * (1 - 0.2))
    assert _w("logarithmic", 0.9, 0.8) == pytest.approx(5 * math.log(math.e + 0.3))
    assert _w("logarithmic", 0.4, 0.8) == pytest.approx(1 * math.log(math.e - 0.2))


def test_paper_defaults_and_overrides():
    assert {k: v[1:] for k, v in WEIGHTINGS.items()} == {
        "exponential": (5.0, 3.0), "constant": (5.0, 0.75), "linear": (5.0, 1.0),
        "logarithmic": (5.0, 1.0)}
    assert _w("exponential", 0.4, 0.8, alpha=2.0, beta=1.0) == pytest.approx(math.exp(-0.2))
    assert _w("exponential", 0.4, 0.8, theta=0.5) == pytest.approx(5 * math.exp(0.0))
    with pytest.raises(ValueError, match="unknown weighting"):
        _w("cubic", 0.1, 0.1)


def test_weights_carry_no_gradient():
    p = torch.tensor([0.9, 0.1], requires_grad=True)
    w = weighting("exponential", p, torch.tensor([0.5, 0.5]))
    assert not w.requires_grad


def test_clip_mask_eq7():
    t = torch.tensor([[10.0], [10.0], [10.0]])
    duration = torch.tensor([[100.0], [100.0], [100.0]])
    lam = torch.tensor([[20.0], [35.0], [10.0]])
    # 2|t - lambda| / T = 0.2, 0.5, 0.0; gamma 0.2: boundary is kept (<=)
    assert clip_mask(t, duration, lam, 0.2).flatten().tolist() == [1.0, 0.0, 1.0]
    assert clip_mask(t, duration, lam, 0.0).flatten().tolist() == [0.0, 0.0, 1.0]
    assert clip_mask(t, duration, lam, 1.0).flatten().tolist() == [1.0, 1.0, 1.0]
