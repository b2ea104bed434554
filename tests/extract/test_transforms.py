"""extract/transforms.py against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from extract.backbones.base import InputSpec
from extract.transforms import (
    center_crop,
    horizontal_flip,
    normalize,
    prepare_clip,
    random_crop,
    resize_short_side,
    temporal_subsample,
    three_crops,
    to_float01,
)


def grid(h: int, w: int, c: int = 1, t: int = 1) -> torch.Tensor:
    """(C, T, H, W) float clip whose pixel (y, x) holds 10 * y + x."""
    ys = torch.arange(h).view(h, 1) * 10
    xs = torch.arange(w).view(1, w)
    return (ys + xs).float().expand(c, t, h, w).clone()


def test_to_float01():
    clip = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    assert torch.allclose(to_float01(clip).flatten(), torch.tensor([0.0, 0.2, 1.0]))
    with pytest.raises(TypeError, match="uint8"):
        to_float01(clip.float())
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        to_float01(clip[0])


def test_resize_short_side_shapes_and_values():
    assert resize_short_side(torch.zeros(3, 2, 4, 6), 2).shape == (3, 2, 2, 3)  # 6 * 2 / 4
    assert resize_short_side(torch.zeros(3, 2, 6, 4), 2).shape == (3, 2, 3, 2)
    assert resize_short_side(torch.zeros(1, 1, 3, 5), 2).shape == (1, 1, 2, 3)  # floor(10/3)
    # Halving with bilinear, half-pixel centres: each output is the mean of a 2x2 block.
    clip = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2)
    assert resize_short_side(clip, 1).flatten().tolist() == [1.5]
    constant = torch.full((3, 2, 5, 7), 0.25)
    assert torch.allclose(resize_short_side(constant, 3), torch.full((3, 2, 3, 4), 0.25))


def test_center_crop_offsets():
    assert center_crop(grid(5, 5), 3)[0, 0].tolist() == [[11, 12, 13], [21, 22, 23],
                                                        [31, 32, 33]]
    # Even leftover (6 - 3 = 3): offset ceil(1.5) = 2, as SlowFast's uniform_crop.
    assert center_crop(grid(6, 4), 3)[0, 0, :, 0].tolist() == [21, 31, 41]
    with pytest.raises(ValueError, match="larger than the frame 2x2"):
        center_crop(grid(2, 2), 3)


def test_random_crop_is_reproducible_and_covers_all_positions():
    clip = grid(5, 5)
    crops = {tuple(random_crop(clip, 3, torch.Generator().manual_seed(s))[0, 0, 0, :1].tolist())
             for s in range(60)}
    assert crops == {(0.0,), (1.0,), (2.0,), (10.0,), (11.0,), (12.0,), (20.0,), (21.0,), (22.0,)}
    a = random_crop(clip, 3, torch.Generator().manual_seed(7))
    b = random_crop(clip, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (1, 1, 3, 3)


def test_three_crops_along_the_long_side():
    landscape = three_crops(grid(4, 8), 4)
    assert [crop[0, 0, 0, 0].item() for crop in landscape] == [0, 2, 4]  # left, centre, right
    portrait = three_crops(grid(8, 4), 4)
    assert [crop[0, 0, 0, 0].item() for crop in portrait] == [0, 20, 40]  # top, centre, bottom
    assert all(crop.shape == (1, 1, 4, 4) for crop in landscape + portrait)
    # Short side centred: 5 rows, crop 4 -> ceil(0.5) = row 1.
    assert three_crops(grid(5, 9), 4)[1][0, 0, 0, 0].item() == 13  # row 1, column ceil(2.5)


def test_horizontal_flip():
    assert horizontal_flip(grid(1, 3))[0, 0, 0].tolist() == [2, 1, 0]


def test_normalize_per_channel():
    clip = torch.ones(2, 1, 1, 1) * torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    out = normalize(clip, mean=(0.5, 0.0), std=(0.25, 2.0))
    assert out.flatten().tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="2 channels"):
        normalize(clip, mean=(0.5,) * 3, std=(1.0,) * 3)


def test_temporal_subsample_indices():
    clip = torch.arange(10).float().view(1, 10, 1, 1)
    assert temporal_subsample(clip, 4).flatten().tolist() == [0, 3, 6, 9]
    assert temporal_subsample(clip[:, :4], 3).flatten().tolist() == [0, 1, 3]  # 1.5 -> 1
    assert temporal_subsample(clip[:, :2], 4).flatten().tolist() == [0, 0, 0, 1]  # truncated


SPEC = InputSpec(num_frames=2, frame_stride=1, crop_size=2, short_side=3,
                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def test_prepare_clip_test_mode():
    clip = torch.full((3, 2, 6, 9), 51, dtype=torch.uint8)
    out = prepare_clip(clip, SPEC, train=False)
    assert out.shape == (3, 2, 2, 2) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, (0.2 - 0.5) / 0.5))


def test_prepare_clip_train_mode_is_reproducible():
    clip = torch.randint(0, 256, (3, 2, 6, 9), dtype=torch.uint8)
    a = prepare_clip(clip, SPEC, train=True, generator=torch.Generator().manual_seed(3))
    b = prepare_clip(clip, SPEC, train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (3, 2, 2, 2)
    outs = {prepare_clip(clip, SPEC, train=True,
                         generator=torch.Generator().manual_seed(s)).sum().item()
            for s in range(20)}
    assert len(outs) > 1  # crops/flips actually vary


def test_prepare_clip_without_flip_never_mirrors():
    # An asymmetric clip: a flip would move the bright column from the left to the right side.
    clip = torch.zeros(3, 2, 8, 8, dtype=torch.uint8)
    clip[:, :, :, 0] = 255
    full = InputSpec(num_frames=2, frame_stride=1, crop_size=8, short_side=8,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # crop = frame: no offset
    flipped = sum(bool(prepare_clip(clip, full, train=True, generator=torch.Generator()
                                    .manual_seed(seed))[..., -1].mean() > 0) for seed in range(20))
    assert 0 < flipped < 20  # with flips on, some seeds mirror the clip
    for seed in range(20):
        out = prepare_clip(clip, full, train=True, flip=False,
                           generator=torch.Generator().manual_seed(seed))
        assert out[..., 0].mean() > out[..., -1].mean()
