"""The localization methods' official behaviour: resampling, upsampling, BaS-Net's decayed NMS,
ASL's architecture and defaults, the shared post-processing file, I3D-shaped synthetic features.

The expected values are computed by hand from what the official codes do (layer6ai-labs/ASL:
dataset/thumos_features.py, utils/misc_utils.py, inference_thumos.py, main_thumos.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_manifests.config import ConfigError
from downstream.data.store_dataset import resample_indices, resampled_times
from downstream.data.synthetic import SyntheticFeatures, make_features, thumos_like_manifest
from downstream.tal import asl as asl_module
from downstream.tal.postprocess import PostprocessConfig, decayed_nms, detect, nms, upsample
from downstream.tal.task import TASK
from downstream.training.config import load_run_config

REPO = Path(__file__).resolve().parents[2]


def test_uniform_resampling_takes_the_first_snippet_of_each_share():
    assert resample_indices(10, 4).tolist() == [0, 2, 5, 7]  # floor(i * 10 / 4)
    assert resample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # shorter videos repeat
    assert resample_indices(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_random_resampling_draws_inside_each_share_including_its_right_end():
    seen = np.array([resample_indices(10, 4, np.random.default_rng(s)) for s in range(400)])
    # share i spans floor(2.5 i) .. floor(2.5 (i + 1)) inclusive; the last one runs to T - 1
    for i, (low, high) in enumerate([(0, 2), (2, 5), (5, 7), (7, 9)]):
        assert set(seen[:, i].tolist()) == set(range(low, high + 1))
    # shorter videos: a share within one snippet is fixed (sample 0 of 3 -> 6 covers [0, 0.5))
    short = np.array([resample_indices(3, 6, np.random.default_rng(s)) for s in range(100)])
    assert set(short[:, 0].tolist()) == {0} and set(short[:, 1].tolist()) == {0, 1}


def test_resampled_times_map_sample_i_to_its_share_of_the_video():
    times = (np.arange(10) + 0.5) * 0.64  # 16-frame snippets at 25 fps
    out = resampled_times(times, 4)
    # sample i covers 2.5 snippets from 2.5 i on: centre (i + 0.5) * 2.5 * 0.64 s
    assert np.allclose(out, (np.arange(4) + 0.5) * 2.5 * 0.64)


def test_upsampling_is_linear_and_extrapolates_past_the_last_snippet():
    cas = np.array([[0.0], [1.0], [3.0]])
    up = upsample(cas, 2)[:, 0]
    # x = 0, .5, 1, 1.5, 2, 2.5; the last point continues the 1 -> 3 slope (scipy's extrapolate)
    assert np.allclose(up, [0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    assert np.allclose(upsample(cas, 1), cas)


def test_decayed_nms_keeps_the_winners_then_the_removed_with_decayed_scores():
    segments = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 9.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    keep, kept = decayed_nms(segments, scores, iou=0.4, sigma=0.35)
    assert keep.tolist() == [0, 2, 1, 3]  # winners by score, then the removed in score order
    assert kept[:2].tolist() == [0.9, 0.7]
    assert kept[2] == pytest.approx(0.8 * np.exp(-(0.9**2) / 0.35))  # IoU 9/10 with the first
    assert kept[3] == pytest.approx(0.6 * np.exp(-(0.9**2) / 0.35))
    # the official "+ 1" on lengths in seconds raises the IoU of short segments
    short = np.array([[0.0, 1.0], [0.5, 1.5]])  # IoU 1/3 exact, 1.5/2.5 = 0.6 with + 1
    assert nms(short, np.array([1.0, 0.5]), 0.4).tolist() == [0, 1]
    assert nms(short, np.array([1.0, 0.5]), 0.4, length_offset=1.0).tolist() == [0]


def test_upsampled_detection_splits_each_snippet_evenly_in_time():
    times = np.array([0.5, 1.5, 2.5, 3.5])  # one-second snippets
    cas = np.array([[0.0], [0.0], [1.0], [1.0]])
    config = PostprocessConfig(thresholds=(0.5,), upsample=4, class_threshold=0.0,
                               suppression="none")
    (found,) = detect(np.array([1.0]), cas, times, ("a",), config)
    # interpolation crosses 0.5 half-way between snippets 1 and 2: the run starts at 1.5 + 0.5
    assert found[2] == pytest.approx(1.0 + 0.25 * 3)
    assert found[3] == pytest.approx(4.0)


def test_asl_defaults_are_the_official_codes():
    config = load_run_config(TASK, "asl")
    assert (config.asl.hidden, config.asl.kernel_size, config.asl.dropout) == (512, 1, 0.0)
    assert config.asl.actionness_heads == "split"
    assert config.asl.beta == pytest.approx(2 / 3)
    assert (config.train.lr, config.train.weight_decay, config.train.batch_size,
            config.train.epochs) == (1e-4, 5e-4, 16, 100)
    assert config.data.resample == 750
    post = config.post
    assert (post.class_threshold, post.upsample, post.oic_delta, post.gamma) == (0.25, 24, 0.2,
                                                                                 0.2)
    assert (post.suppression, post.nms_iou, post.soft_nms_sigma, post.iou_length_offset) == (
        "decayed-nms", 0.4, 0.35, 1.0)


def test_asl_split_heads_see_their_own_half_and_select_with_their_mean():
    model = asl_module.build(feature_dim=6, num_classes=2, hidden=4)
    features = torch.randn(1, 16, 6)
    mask = torch.ones(1, 16, dtype=torch.bool)
    base = model(features, mask)
    flow_changed = features.clone()
    flow_changed[..., 3:] += 5.0
    out = model(flow_changed, mask)
    assert torch.equal(out["heads"][..., 0], base["heads"][..., 0])  # RGB head: first half only
    assert not torch.equal(out["heads"][..., 1], base["heads"][..., 1])
    # h = (softmax(s) + a_rgb + a_flow) / 3, the official selection
    probs = torch.softmax(base["cas"], dim=2)
    expected = (probs + base["heads"].sum(2, keepdim=True)) / 3
    assert torch.allclose(base["h"], expected, atol=1e-6)
    # each head has its own GCE loss: both receive gradients from L_ASL
    batch = {"features": features, "mask": mask, "video_labels": torch.tensor([[1.0, 0.0]])}
    loss, _ = model.training_loss(batch)
    loss.backward()
    for head in model.heads:
        assert head.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        asl_module.build(feature_dim=7, num_classes=2)


def test_shared_post_file_is_the_shared_post_processing():
    shared = yaml.safe_load((REPO / "downstream/tal/shared_post.yaml").read_text())["post"]
    defaults = PostprocessConfig()
    assert set(shared) == set(defaults.__dataclass_fields__)
    for key, value in shared.items():
        expected = getattr(defaults, key)
        assert (tuple(value) if isinstance(value, list) else value) == expected, key
    config = load_run_config(TASK, "asl", REPO / "downstream/tal/shared_post.yaml")
    assert config.post == defaults  # the file wins over the method's official post-processing


def test_grounding_refuses_resampling():
    from downstream.tsg.task import TASK as TSG

    config = load_run_config(TSG, "mmn", None, ["data.resample=750"])
    with pytest.raises(ConfigError, match="data.resample=750"):
        TSG.dataset(None, None, [], config)


def test_i3d_shaped_features_have_two_streams_at_each_videos_fps():
    manifest = thumos_like_manifest(num_videos=6, num_classes=4, seed=0, duration=(30.0, 40.0),
                                    fps=(24.0, 30.0))
    assert {v.fps for v in manifest.videos} == {24.0, 30.0}
    spec = SyntheticFeatures(dim=32, streams=2, snippet_frames=16, nonnegative=True,
                             background_modes=3)
    for video in manifest.videos:
        feats, times = make_features(video, manifest.classes, spec, seed=0)
        assert feats.shape == (len(times), 32) and feats.min() > 0
        assert np.allclose(np.diff(times), 16 / video.fps)
    # the default (one stream, 1 s step) is unchanged by the new options
    video = manifest.videos[0]
    one, _ = make_features(video, manifest.classes, SyntheticFeatures(dim=8), seed=0)
    again, _ = make_features(video, manifest.classes,
                             SyntheticFeatures(dim=8, streams=1, background_modes=1), seed=0)
    assert np.array_equal(one, again)
