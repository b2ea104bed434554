"""Which videos a stage-2 run trains on and which select its checkpoints (not the test split,
unless a user asks for the official codes' protocol with ``data.select_split=test``)."""

from __future__ import annotations

import hashlib
import logging

from data_manifests.schema import Manifest
from downstream.data.store_dataset import DataError

log = logging.getLogger(__name__)


def held_out_split(manifest: Manifest, fraction: float,
                   split: str = "train") -> tuple[list[str], list[str]]:
    """Deterministic (training ids, validation ids) from the videos of one manifest split.

    The videos are ordered by the sha1 of their id and the first ``round(fraction * n)`` are
    held out: the choice depends on the ids only (no seed, no file order), so it is the same for
    every run, seed and machine, and the held-out share is the asked one (a threshold on the
    hash gave 56 of THUMOS'14's 200 videos for 0.2). At least one video stays on each side when
    there are two or more.
    """
    ids = [v.video_id for v in manifest.videos if v.split == split]
    if not ids:
        known = sorted({v.split for v in manifest.videos})
        raise DataError(f"{manifest.root}: no {split!r} videos to hold out a validation part "
                        f"from (splits: {', '.join(known)})")
    keyed = sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    count = round(fraction * len(ids))
    if len(ids) > 1:
        count = min(max(count, 1), len(ids) - 1)
    val = keyed[:count]
    held = set(val)
    train = [i for i in ids if i not in held]
    return sorted(train), sorted(val)


def split_ids(manifest: Manifest, train_split: str = "train", val_fraction: float = 0.2,
              select_split: str = "") -> tuple[list[str], list[str]]:
    """(training ids, checkpoint-selection ids).

    Selection is on the "val" split when the manifest has one and ``train_split`` is another
    split; otherwise on a deterministic held-out ``val_fraction`` of ``train_split``
    (:func:`held_out_split`), so the two lists never share a video. A ``select_split`` names
    the selection split instead, and all of ``train_split`` trains: "test" reproduces the
    official ASL, RSKP and LACP codes, which keep the checkpoint that scores best on the test
    split (their papers' numbers; optimistic, hence never the default).
    """
    if train_split == "test":
        raise DataError(f"{manifest.root}: data.train_split=test; the test split is the one "
                        "a task is scored on, never trained on")
    if select_split:
        if select_split == train_split:
            raise DataError(f"{manifest.root}: data.select_split={select_split} is the "
                            "training split; leave it empty to hold out part of it")
        train = sorted(v.video_id for v in manifest.videos if v.split == train_split)
        select = sorted(v.video_id for v in manifest.videos if v.split == select_split)
        for name, ids, key in ((train_split, train, "train_split"),
                               (select_split, select, "select_split")):
            if not ids:
                known = sorted({v.split for v in manifest.videos})
                raise DataError(f"{manifest.root}: no video in split {name!r} "
                                f"(data.{key}; splits: {', '.join(known)})")
        if select_split == "test":
            log.warning("checkpoints are selected on the test split (data.select_split=test, "
                        "the official codes' protocol): test scores are optimistic")
        return train, select
    if train_split != "val" and any(v.split == "val" for v in manifest.videos):
        train = sorted(v.video_id for v in manifest.videos if v.split == train_split)
        val = sorted(v.video_id for v in manifest.videos if v.split == "val")
        if not train:
            known = sorted({v.split for v in manifest.videos})
            raise DataError(f"{manifest.root}: no video in split {train_split!r} "
                            f"(data.train_split; splits: {', '.join(known)})")
        return train, val
    return held_out_split(manifest, val_fraction, split=train_split)
