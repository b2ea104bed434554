"""Stage-1 losses as pure functions over logits (paper Eq. 1, 8, 9).

All take ``logits`` (B, K) and return a scalar: the per-clip sum over classes, divided by K
(the mean-BCE convention, identical in every mode so that learning rates carry over), averaged
over the batch. ``-log p`` is computed as ``softplus(-z)`` and ``-log(1 - p)`` as ``softplus(z)``
for numerical stability.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Ordinary multi-label BCE with {0,1} targets (B, K): the `full` mode with clip labels."""
    targets = targets.to(logits.dtype)
    per_class = targets * F.softplus(-logits) + (1 - targets) * F.softplus(logits)
    return per_class.mean(dim=1).mean()


def noisy_loss(logits: Tensor, video_labels: Tensor) -> Tensor:
    """Eq. 1: every video-level label is a positive of the sampled clip."""
    return bce_loss(logits, video_labels)


def adaptfocus_loss(logits: Tensor, video_labels: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
    """Eq. 9 = Eq. 8 on the video's positives + ordinary BCE on its negatives.

    L = -sum_{k: y=1} M * W * log p  -  sum_{k: y=0} log(1 - p)
    ``weights`` W and ``mask`` M (B, K) are detached here: they scale the loss, they are not
    paths for gradients. Their values on negative classes are ignored.
    """
    y = video_labels.to(logits.dtype)
    focus = (weights * mask).detach().to(logits.dtype)
    per_class = y * focus * F.softplus(-logits) + (1 - y) * F.softplus(logits)
    return per_class.mean(dim=1).mean()
