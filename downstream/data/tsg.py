"""Grounding items: one per sentence, carrying only the supervision its level allows.

The level is read from the annotations a dataset is built with (a method's ``needs``, which
the method declares once): ``moments`` in them is **full** supervision, ``glances`` is
**glance** supervision (D3G), neither is **weak** supervision (CPL: video-sentence pairs). An
item's targets are

* ``text``: the sentence (a list of strings in a batch), at every level;
* ``duration``: the video's length in seconds (the moment map spans ``[0, duration]``);
* full only: ``moment`` ``(2,)`` = (start, end) seconds, clipped to the video as MMN does;
* glance only: ``glance`` ``()`` seconds.

A glance or weak item never holds the sentence's boundaries, so a method cannot read what its
level does not allow. Validation sets are built with the task's ``eval_needs`` (moments: the
metric needs them); prediction sets with no needs (text only). Features are whole videos
(grounding never crops). The checks run before any work and name the video and the sentence:
a sentence without words; at the full level one without a finite ``start < end``; at the
glance level one without a finite glance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from data_manifests.schema import Manifest, VideoRecord
from downstream.data.store_dataset import DataError, StoreDataset
from downstream.tsg.text import tokenize

LEVELS = ("full", "glance", "weak")


def supervision_level(needs: Sequence[str]) -> str:
    """The level of a dataset built with ``needs`` (see the module docstring)."""
    return "full" if "moments" in needs else "glance" if "glances" in needs else "weak"


class TsgDataset(StoreDataset):
    """Items keyed ``(video_id, sentence index)``; see the module docstring for the targets."""

    def __init__(self, store: Any, manifest: Manifest, video_ids: Sequence[str], *,
                 needs: Sequence[str] = (), **kwargs: Any):
        self.supervision = supervision_level(needs)
        records = manifest.by_id()
        check_sentences(manifest, [records[i] for i in video_ids if i in records],
                        self.supervision, kwargs.get("who", "this method"))
        super().__init__(store, manifest, video_ids, needs=needs, **kwargs)

    def item_keys(self, video: VideoRecord) -> list[Hashable]:
        return [(video.video_id, k) for k in range(len(video.sentences or ()))]

    def video_of(self, key: Hashable) -> str:
        return str(key[0])  # type: ignore[index]

    def targets(self, video: VideoRecord, key: Hashable, times: np.ndarray) -> dict[str, Any]:
        sentence = video.sentences[key[1]]  # type: ignore[index]
        out: dict[str, Any] = {"text": sentence.text,
                               "duration": torch.tensor(video.duration, dtype=torch.float32)}
        if self.supervision == "full":
            out["moment"] = torch.tensor([max(sentence.start, 0.0),
                                          min(sentence.end, video.duration)],
                                         dtype=torch.float32)
        elif self.supervision == "glance":
            out["glance"] = torch.tensor(sentence.glance, dtype=torch.float32)
        return out


def check_sentences(manifest: Manifest, videos: Sequence[VideoRecord], level: str,
                    who: str) -> None:
    """Raise :class:`DataError` for the first sentence that ``level`` cannot use."""
    for video in videos:
        for k, sentence in enumerate(video.sentences or ()):
            where = (f"manifest {manifest.root}: video {video.video_id!r} sentence {k} "
                     f"({sentence.text!r})")
            if not tokenize(sentence.text):
                raise DataError(f"{where} has no words; every grounding query needs one")
            if level == "full" and not _finite_interval(sentence.start, sentence.end):
                raise DataError(f"{where} has no moment (start {sentence.start!r}, end "
                                f"{sentence.end!r}); {who} needs the moment of every sentence "
                                "it trains on (full supervision) or is validated on")
            if level == "glance" and not _finite(sentence.glance):
                raise DataError(f"{where} has no glance; {who} trains on one glance "
                                "timestamp per sentence")


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _finite_interval(start: Any, end: Any) -> bool:
    return _finite(start) and _finite(end) and end > start
