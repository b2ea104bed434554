"""AdaptFocus (weakly supervised end-to-end training on long videos), paper Sections 3.3-3.5.

* ``saliency``: Action Saliency Estimation, the (position, spike-actionness) state per action
  instance (Eq. 2 naive, Eq. 3 online).
* ``focusing``: Action Focusing weights W (Eq. 5, S1-S3) and the Clip Focusing mask M (Eq. 7).
* ``losses``: the noisy (Eq. 1), full and AdaptFocus (Eq. 8-9) losses as pure functions.
"""

from extract.adaptfocus.focusing import WEIGHTINGS, clip_mask, weighting
from extract.adaptfocus.losses import adaptfocus_loss, bce_loss, noisy_loss
from extract.adaptfocus.saliency import ActionSaliency

__all__ = ["WEIGHTINGS", "ActionSaliency", "adaptfocus_loss", "bce_loss", "clip_mask",
           "noisy_loss", "weighting"]
