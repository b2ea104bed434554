"""Clip geometry, clip labels per mode, the epoch sampler and view parsing (pure parts)."""

import pytest
import torch

from data_manifests.schema import ManifestError, Segment, VideoRecord
from extract.training.data import ClipGeometry, EpochBatches, clip_targets, video_targets
from extract.training.evaluate import parse_views

CLASSES = {"a": 0, "b": 1, "c": 2}
VIDEO = VideoRecord(video_id="v", path="v.mp4", split="train", duration=10.0, fps=10.0,
                    num_frames=100, labels=("a", "b"),
                    segments=(Segment("a", 0.0, 2.0), Segment("b", 5.0, 6.0)))


def test_geometry_by_hand():
    g = ClipGeometry(num_frames=4, stride=3)
    assert g.span == 10 and g.indices(5) == [5, 8, 11, 14]
    assert g.max_start(VIDEO) == 90
    assert g.centre_time(10, 10.0) == pytest.approx(1.45)  # frames 10..19 -> centre 14.5
    assert g.interval(10, 10.0) == (1.0, 2.0)
    assert g.evenly_spaced_starts(VIDEO, 4) == [0, 30, 60, 90]
    short = VideoRecord(video_id="s", path=None, split="train", duration=0.5, fps=10.0,
                        num_frames=5)
    assert g.max_start(short) == 0  # shorter than a clip: one start, last frame repeated


def test_clip_labels_full_versus_noisy():
    assert video_targets(VIDEO, CLASSES).tolist() == [1.0, 1.0, 0.0]  # noisy: video labels
    assert clip_targets(VIDEO, CLASSES, 1.0, 2.0).tolist() == [1.0, 0.0, 0.0]
    assert clip_targets(VIDEO, CLASSES, 2.0, 5.0).tolist() == [0.0, 0.0, 0.0]  # touching only
    assert clip_targets(VIDEO, CLASSES, 1.5, 5.5).tolist() == [1.0, 1.0, 0.0]
    no_segments = VideoRecord(video_id="w", path=None, split="train", duration=1.0, fps=10.0,
                              num_frames=10, labels=("a",))
    with pytest.raises(ManifestError, match="'w' has no interval annotations"):
        clip_targets(no_segments, CLASSES, 0.0, 1.0)


def test_epoch_batches_cover_each_video_once_per_epoch_and_resume():
    sampler = EpochBatches(10, batch_size=3, seed=1, epochs=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6  # 3 full batches per epoch, tail dropped
    first_epoch = [i for b in batches[:3] for e, i in b]
    assert len(set(first_epoch)) == 9 and all(e == 0 for e, _ in batches[0])
    resumed = list(EpochBatches(10, batch_size=3, seed=1, epochs=2, first_step=4))
    assert resumed == batches[4:]
    ranks = [list(EpochBatches(10, batch_size=2, seed=1, epochs=1, rank=r, world_size=2))
             for r in (0, 1)]
    seen = [{i for b in r for _, i in b} for r in ranks]
    assert seen[0].isdisjoint(seen[1])


def test_parse_views():
    assert parse_views("10x3") == (10, 3) and parse_views("30X1") == (30, 1)
    for bad in ("10", "10x2", "0x1", "axb"):
        with pytest.raises(ValueError, match="--views"):
            parse_views(bad)


def test_adaptfocus_focus_is_eq7_and_eq5_on_a_batch():
    from extract.adaptfocus import ActionSaliency
    from extract.training.config import load_stage1_config
    from extract.training.loop import _focus

    ase = ActionSaliency([("v", [0, 1])], num_classes=3)
    ase.state[:] = torch.tensor([[1.0, 9.0], [0.8, 0.4]], dtype=torch.float64)
    batch = {"time": torch.tensor([2.0], dtype=torch.float64),
             "duration": torch.tensor([10.0], dtype=torch.float64)}
    probs = torch.tensor([[0.9, 0.1, 0.5]])
    cfg = load_stage1_config(None)
    w, m, stats = _focus(cfg, ase, torch.tensor([0]), batch, probs, gamma=0.5)
    # class a: 2|2-1|/10 = 0.2 <= 0.5 -> kept; class b: 2|2-9|/10 = 1.4 -> masked
    assert m[0, :2].tolist() == [1.0, 0.0]
    assert w[0, 0].item() == pytest.approx(5 * torch.exp(torch.tensor(0.9 - 0.6)).item())
    assert w[0, 1].item() == pytest.approx(torch.exp(torch.tensor(-3 * (0.3 - 0.1))).item())
    assert stats["above_threshold"] == 0.5 and stats["mask_kept"] == 0.5
    cfg = load_stage1_config(None, ["adaptfocus.action_focusing=false",
                                    "adaptfocus.clip_focusing=false"])
    w, m, _ = _focus(cfg, ase, torch.tensor([0]), batch, probs, gamma=0.5)
    assert (w == 1).all() and (m == 1).all()
