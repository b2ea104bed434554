"""Action Focusing weights W(p, a_hat) (Eq. 5, Appendix S1.5 Eq. S1-S3) and the Clip Focusing
mask M(t, T, lambda, gamma) (Eq. 7). Pure functions on tensors; the results are loss *weights*:
callers get them detached (no gradient flows through W or M).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def exponential(p: Tensor, a_hat: Tensor, *, alpha: float, beta: float) -> Tensor:
    """Eq. 5: alpha * e^(p - a_hat) when p >= a_hat, else e^(-beta * (a_hat - p))."""
    diff = p - a_hat
    return torch.where(diff >= 0, alpha * torch.exp(diff), torch.exp(beta * diff))


def constant(p: Tensor, a_hat: Tensor, *, alpha: float, beta: float) -> Tensor:
    """Eq. S1: alpha when p >= a_hat, else beta."""
    above = (p - a_hat) >= 0
    return torch.where(above, torch.full_like(p, alpha), torch.full_like(p, beta))


def linear(p: Tensor, a_hat: Tensor, *, alpha: float, beta: float) -> Tensor:
    """Eq. S2: alpha * (1 + (p - a_hat)) when p >= a_hat, else beta * (1 - (a_hat - p))."""
    diff = p - a_hat
    return torch.where(diff >= 0, alpha * (1 + diff), beta * (1 + diff))


def logarithmic(p: Tensor, a_hat: Tensor, *, alpha: float, beta: float) -> Tensor:
    """Eq. S3: alpha * ln(e + (p - a_hat)) when p >= a_hat, else beta * ln(e - (a_hat - p))."""
    diff = p - a_hat
    scale = torch.where(diff >= 0, torch.full_like(p, alpha), torch.full_like(p, beta))
    return scale * torch.log(math.e + diff)


# name -> (function, default alpha, default beta); defaults are the paper's (4.1, S1.5).
WEIGHTINGS: dict[str, tuple[Callable[..., Tensor], float, float]] = {
    "exponential": (exponential, 5.0, 3.0),
    "constant": (constant, 5.0, 0.75),
    "linear": (linear, 5.0, 1.0),
    "logarithmic": (logarithmic, 5.0, 1.0),
}


def weighting(name: str, p: Tensor, spike: Tensor, *, theta: float = 0.75,
              alpha: float | None = None, beta: float | None = None) -> Tensor:
    """W(p, theta * a) elementwise, detached. ``p`` and ``spike`` are probabilities in [0, 1].

    ``alpha``/``beta`` default to the paper's values for the chosen function.
    """
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting function {name!r}; choose one of {sorted(WEIGHTINGS)}")
    fn, default_alpha, default_beta = WEIGHTINGS[name]
    p, spike = p.detach(), spike.detach()
    return fn(p, theta * spike,
              alpha=default_alpha if alpha is None else alpha,
              beta=default_beta if beta is None else beta)


def clip_mask(t: Tensor, duration: Tensor, position: Tensor, gamma: float) -> Tensor:
    """Eq. 7: 1.0 where 2 |t - lambda| / T <= gamma, else 0.0 (float, no gradient).

    ``t`` (clip centre) and ``position`` (lambda) share a unit, ``duration`` T the same unit;
    the ratio is unit-free. Shapes broadcast, e.g. t (B, 1), duration (B, 1), position (B, K).
    """
    distance = 2 * (t - position).abs() / duration
    return (distance <= gamma).to(position.dtype).detach()
