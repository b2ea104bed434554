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


def test_lacp_defaults_are_the_official_codes():
    config = load_run_config(TASK, "lacp")
    lacp = config.lacp
    assert (lacp.hidden, lacp.kernel_size, lacp.dropout, lacp.classifier_bias) == (2048, 3, 0.7,
                                                                                   False)
    assert (lacp.weight_point, lacp.feature_samples, lacp.feature_classes) == (0.5, 3, "last")
    assert (config.train.lr, config.train.weight_decay, config.train.batch_size,
            config.train.epochs, config.data.max_snippets) == (1e-4, 5e-4, 16, 160, 0)
    post = config.post
    assert post.thresholds == pytest.approx(np.arange(0.0, 0.25, 0.025))
    assert post.actionness_thresholds == pytest.approx(np.arange(0.5, 0.725, 0.025))
    assert (post.class_threshold, post.upsample, post.suppression, post.nms_iou,
            post.iou_length_offset) == (0.5, 24, "nms", 0.7, 1.0)


def test_lacp_official_score_loss_pools_action_and_background_runs_then_squares():
    from downstream.tal.lacp import completeness_loss

    scores = torch.tensor([[0.1], [0.9], [0.9], [0.1], [0.1]])
    seq = np.array([[0], [1], [1], [0], [0]], dtype=np.uint8)
    # runs: bg [0, 0] (no flank: OIC 0.9 on 1 - scores), action [1, 2] (flank snippet 0:
    # 0.9 - 0.1), bg [3, 4] (flank snippet 2: 0.9 - 0.1)
    official = completeness_loss(scores, seq, [0], 0.25)
    assert official.item() == pytest.approx((0.2 + (0.1 + 0.2) / 2) ** 2)
    paper = completeness_loss(scores, seq, [0], 0.25, form="paper")
    assert paper.item() == pytest.approx(1 - (0.9 + 0.8 + 0.8) / 3)


def test_lacp_segment_features_draw_one_snippet_per_third():
    from downstream.tal.lacp import segment_feature

    features = torch.arange(9, dtype=torch.float32)[:, None]
    rng = np.random.default_rng(0)
    draws = {segment_feature(features, 0, 8, 3, rng).item() for _ in range(200)}
    # one of 0-2, one of 3-5, one of 6-8: means between 3 and 5 in steps of 1/3
    assert min(draws) == pytest.approx(3.0) and max(draws) == pytest.approx(5.0)
    assert segment_feature(features, 0, 8, 0, rng).item() == pytest.approx(4.0)


def test_actionness_proposals_come_from_actionness_runs_scored_on_the_class():
    times = np.arange(8) + 0.5
    cas = np.zeros((8, 1))
    cas[2:5, 0] = 0.2  # below the CAS cut 0.5
    actionness = np.zeros(8)
    actionness[2:5] = 0.9
    base = PostprocessConfig(thresholds=(0.5,), class_threshold=0.0, suppression="none")
    assert detect(np.array([1.0]), cas, times, ("a",), base) == []
    with_actionness = PostprocessConfig(thresholds=(0.5,), actionness_thresholds=(0.5,),
                                        class_threshold=0.0, suppression="none", gamma=0.0)
    (found,) = detect(np.array([1.0]), cas, times, ("a",), with_actionness, actionness)
    assert found[2:] == (2.0, 5.0)
    assert found[1] == pytest.approx(0.2)  # OIC on the class sequence, flanks of 0 snippets
    with pytest.raises(ConfigError, match="actionness"):
        config = load_run_config(TASK, "mil", None, ["post.actionness_thresholds=[0.5]"])
        TASK.dataset(None, None, [], config)


def test_rskp_defaults_are_the_official_codes():
    config = load_run_config(TASK, "rskp")
    rskp = config.rskp
    assert (rskp.hidden, rskp.kernel_size, rskp.dropout, rskp.bases_init) == (2048, 1, 0.6,
                                                                              "xavier")
    assert (rskp.memory_warmup_epochs, rskp.memory_weight, rskp.background_weight) == (101, 0.5,
                                                                                       0.2)
    assert (rskp.kd_temperature, rskp.kd_teacher_memory, rskp.alpha,
            rskp.alpha_after_warmup) == (0.2, 0.2, 1.0, 0.5)
    assert rskp.batch_reduction == "sum" and rskp.main_weight == 0.6
    train = config.train
    assert (train.lr, train.adam_beta2, train.weight_decay, train.batch_size,
            train.epochs) == (5e-5, 0.99, 5e-4, 10, 200)
    post = config.post
    assert post.thresholds == pytest.approx(np.arange(0.001, 0.04, 0.002))
    assert (post.always_best_class, post.min_length, post.gamma, post.nms_iou,
            post.nms_overlap, post.upsample) == (False, 2, 0.0, 0.5, "candidate", 1)


def rskp_batch(length: int = 12) -> dict:
    torch.manual_seed(0)
    return {"features": torch.randn(2, length, 6), "mask": torch.ones(2, length, dtype=torch.bool),
            "video_labels": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])}


def test_rskp_memory_waits_for_the_warmup_then_is_filled_by_one_pass():
    from downstream.tal.rskp import build

    model = build(feature_dim=6, num_classes=3, hidden=8, dropout=0.0, memory_warmup_epochs=2,
                  batch_reduction="mean")
    batch = rskp_batch()
    model.start_epoch(0, lambda: [batch])
    model.training_loss(batch)  # a training step before the warm-up ends: no update
    assert (model.memory_score == 0).all() and "inter" not in model(
        batch["features"], batch["mask"], batch["video_labels"])
    model.start_epoch(2, lambda: [batch])  # the warm-up ends: one pass fills the memory
    assert (model.memory_score[:3] > 0).all()
    out = model(batch["features"], batch["mask"], batch["video_labels"])
    assert "inter" in out
    # the foreground attention's centre starts opposite to the background class's
    fresh = build(feature_dim=6, num_classes=3, hidden=8)
    assert torch.allclose(fresh.fg_center[0], -fresh.class_centers[-1])


def test_rskp_sums_the_losses_of_a_batch_as_the_official_gradient_accumulation():
    from downstream.tal.rskp import build

    batch = rskp_batch()
    losses = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(1)
        model = build(feature_dim=6, num_classes=3, hidden=8, dropout=0.0,
                      batch_reduction=reduction)
        losses[reduction] = model.training_loss(batch)[0].item()
    assert losses["sum"] == pytest.approx(2 * losses["mean"], rel=1e-5)


def test_rskp_localizes_with_the_official_fusion():
    from downstream.tal.rskp import build

    model = build(feature_dim=6, num_classes=3, hidden=8).eval()
    batch = rskp_batch()
    with torch.no_grad():
        video, cas = model.localize(batch["features"], batch["mask"])
        out = model(batch["features"], batch["mask"])
    probs = (0.6 * torch.softmax(out["main"]["cas"], -1)
             + 0.4 * torch.softmax(out["intra"]["cas"], -1))[..., :-1]
    assert torch.allclose(cas, probs * out["main"]["att"][..., None], atol=1e-6)
    assert video.shape == (2, 3)


def test_rskp_post_processing_options():
    # NMS on the candidate's own length drops a short proposal inside a long one
    segments = np.array([[0.0, 10.0], [0.0, 2.0]])
    assert nms(segments, np.array([1.0, 0.9]), 0.5).tolist() == [0, 1]  # IoU 0.2
    assert nms(segments, np.array([1.0, 0.9]), 0.5, over="candidate").tolist() == [0]
    times = np.arange(6) + 0.5
    cas = np.array([[0.0, 0.0], [0.9, 0.0], [0.0, 0.0], [0.9, 0.0], [0.9, 0.0], [0.0, 0.0]])
    config = PostprocessConfig(thresholds=(0.5,), class_threshold=0.5, always_best_class=False,
                               min_length=2, suppression="none")
    found = detect(np.array([0.9, 0.1]), cas, times, ("a", "b"), config)
    assert [(d[0], d[2], d[3]) for d in found] == [("a", 3.0, 5.0)]  # the 1-snippet run is out
    assert detect(np.array([0.3, 0.1]), cas, times, ("a", "b"), config) == []  # no fallback


def test_lacp_pseudo_action_points_grow_from_points_while_background_is_low():
    from downstream.tal.lacp_search import pseudo_action_points

    points = np.zeros((8, 2), dtype=np.uint8)
    points[3, 0] = 1
    background_score = np.array([0.05, 0.5, 0.05, 0.2, 0.05, 0.05, 0.9, 0.05])
    background = np.zeros(8, dtype=bool)
    background[5] = True  # a background seed stops the growth
    seeds = pseudo_action_points(points, background_score, background)
    # left of 3: snippet 2 (0.05) then 1 (0.5) stops; right of 3: 4 (0.05) then 5 (seed) stops
    assert np.flatnonzero(seeds[:, 0]).tolist() == [2, 3, 4]
    assert seeds[:, 1].sum() == 0


def test_lacp_transcript_and_ranges_follow_the_seeds():
    from downstream.tal.lacp_search import transcript_and_ranges

    action = np.zeros(12, dtype=bool)
    action[[4, 5, 9]] = True
    blocked = np.zeros(12, dtype=bool)
    blocked[[1, 7, 11]] = True
    transcript, ranges = transcript_and_ranges(action, blocked)
    assert transcript == [0, 1, 0, 1, 0]
    # background up to its last seed, the actions' seeds, the seed between, the end's
    assert ranges == [(0, 1), (4, 5), (7, 7), (9, 9), (11, 11), (12, 12)]
    # no background seed before the first action: the action starts the video
    transcript, ranges = transcript_and_ranges(action, np.isin(np.arange(12), [7, 11]))
    assert transcript == [1, 0, 1, 0] and ranges[0] == (-1, 5)


def test_lacp_beam_search_recovers_the_clear_sequence():
    from downstream.tal.lacp_search import beam_sequence, transcript_and_ranges

    truth = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0], dtype=np.uint8)
    scores = np.where(truth == 1, 0.9, 0.1)
    action = np.isin(np.arange(12), [4, 9])
    blocked = np.isin(np.arange(12), [1, 7, 11])
    labels = beam_sequence(scores, *transcript_and_ranges(action, blocked))
    assert labels.tolist() == truth.tolist()
