"""ActivityNet detection mAP (eval_detection.py semantics) on hand-computed cases."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from data_manifests.schema import ManifestMeta, Segment, VideoRecord, write_manifest
from downstream.metrics.detection import (
    TIOU_PRESETS,
    evaluate_detection,
    interpolated_ap,
    load_detection_ground_truth,
    load_detection_predictions,
    parse_tiou,
    segment_iou,
)


def test_presets_are_the_papers_thresholds():
    assert TIOU_PRESETS["thumos14"] == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    assert TIOU_PRESETS["activitynet"] == pytest.approx(np.linspace(0.5, 0.95, 10))
    assert len(TIOU_PRESETS["activitynet"]) == 10
    assert parse_tiou("0.3, 0.5") == (0.3, 0.5)
    assert parse_tiou("THUMOS14") == TIOU_PRESETS["thumos14"]
    with pytest.raises(ValueError, match="thresholds must lie in"):
        parse_tiou("0.5,1.5")


def test_segment_iou():
    assert segment_iou((0, 4), np.array([[0, 2], [2, 6], [10, 12]])) == pytest.approx(
        [0.5, 2 / 6, 0.0])


def test_interpolated_ap_uses_the_monotone_envelope():
    # precision 1, 0.5, 2/3 at recall .5, .5, 1: envelope gives 1 on [0, .5] and 2/3 on [.5, 1]
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == (
        pytest.approx(0.5 + 0.5 * 2 / 3))
    # the envelope lifts an early low precision: P = 0.5 then 2/3 -> AP = 2/3 (not 0.5*0.5+...)
    assert interpolated_ap(np.array([0.0, 0.5, 2 / 3]), np.array([0.0, 0.5, 1.0])) == (
        pytest.approx(2 / 3))


def test_hand_computed_ap_tp_fp_tp():
    gt = {"v": [("a", 0.0, 10.0), ("a", 20.0, 30.0)]}
    pred = {"v": [("a", 0.9, 0.0, 10.0), ("a", 0.8, 40.0, 50.0), ("a", 0.7, 20.0, 30.0)]}
    out = evaluate_detection(gt, pred, [0.5])
    assert out["ap_per_class"]["a"] == pytest.approx([0.5 * 1 + 0.5 * 2 / 3])
    assert out["mAP"] == pytest.approx([5 / 6])
    assert out["average_mAP"] == pytest.approx(5 / 6)
    assert out["tiou"] == [0.5]


def test_tied_scores_keep_input_order():
    # One GT; two predictions with the same score: a miss listed first, the hit second.
    gt = {"v": [("a", 0.0, 10.0)]}
    miss, hit = ("a", 0.5, 50.0, 60.0), ("a", 0.5, 0.0, 10.0)
    assert evaluate_detection(gt, {"v": [miss, hit]}, [0.5])["mAP"] == [pytest.approx(0.5)]
    assert evaluate_detection(gt, {"v": [hit, miss]}, [0.5])["mAP"] == [pytest.approx(1.0)]
    # across videos, ties are ranked in the order of the videos in the mapping
    gt2 = {"v": [("a", 0.0, 10.0)], "w": []}
    assert evaluate_detection(gt2, {"w": [miss], "v": [hit]}, [0.5])["mAP"] == [0.5]


def test_iou_exactly_at_threshold_counts_as_match():
    gt = {"v": [("a", 0.0, 4.0)]}
    pred = {"v": [("a", 1.0, 1.0, 3.0)]}  # IoU = 2 / 4 = 0.5 exactly
    out = evaluate_detection(gt, pred, [0.25, 0.5, 0.75])
    assert out["ap_per_class"]["a"] == [1.0, 1.0, 0.0]
    assert out["average_mAP"] == pytest.approx(2 / 3)


def test_matched_gt_passes_to_the_next_best_unmatched_one():
    gt = {"v": [("a", 0.0, 10.0), ("a", 2.0, 12.0)]}
    pred = {"v": [("a", 0.9, 0.0, 10.0), ("a", 0.8, 0.0, 10.0)]}
    # second prediction: its best GT (IoU 1) is taken, the other has IoU 8/12 = 0.667
    out = evaluate_detection(gt, pred, [0.5, 0.75])
    assert out["ap_per_class"]["a"] == pytest.approx([1.0, 0.5])


def test_duplicate_detection_is_a_false_positive():
    gt = {"v": [("a", 0.0, 10.0), ("a", 30.0, 40.0)]}
    pred = {"v": [("a", 0.9, 0.0, 10.0), ("a", 0.8, 0.0, 10.0), ("a", 0.7, 30.0, 40.0)]}
    # TP, FP (duplicate), TP: precision 1, .5, 2/3
    assert evaluate_detection(gt, pred, [0.5])["mAP"] == [pytest.approx(0.5 + 0.5 * 2 / 3)]


def test_class_without_predictions_has_ap_zero_and_counts(caplog):
    gt = {"v": [("a", 0.0, 10.0), ("b", 20.0, 30.0)]}
    pred = {"v": [("a", 0.9, 0.0, 10.0)]}
    with caplog.at_level(logging.WARNING):
        out = evaluate_detection(gt, pred, [0.5])
    assert out["ap_per_class"] == {"a": [1.0], "b": [0.0]}
    assert out["mAP"] == [0.5]
    assert "without predictions" in caplog.text and "b" in caplog.text


def test_predictions_of_classes_absent_from_gt_are_ignored_with_warning(caplog):
    gt = {"v": [("a", 0.0, 10.0)]}
    pred = {"v": [("zzz", 0.99, 0.0, 10.0), ("a", 0.9, 0.0, 10.0)]}
    with caplog.at_level(logging.WARNING):
        out = evaluate_detection(gt, pred, [0.5])
    assert out["ap_per_class"] == {"a": [1.0]}
    assert "'zzz'" in caplog.text


def test_predictions_for_unknown_videos_are_false_positives_with_warning(caplog):
    gt = {"v": [("a", 0.0, 10.0)]}
    pred = {"ghost": [("a", 0.95, 0.0, 10.0)], "v": [("a", 0.9, 0.0, 10.0)]}
    with caplog.at_level(logging.WARNING):
        out = evaluate_detection(gt, pred, [0.5])
    assert out["mAP"] == [pytest.approx(0.5)]  # FP first, then the TP at precision 1/2
    assert "ghost" in caplog.text


def test_prediction_in_video_without_gt_of_its_class_is_a_false_positive():
    gt = {"v": [("a", 0.0, 10.0)], "w": [("b", 0.0, 5.0)]}
    pred = {"w": [("a", 0.95, 0.0, 10.0)], "v": [("a", 0.9, 0.0, 10.0)],
            "x": []}
    out = evaluate_detection(gt, pred, [0.5])
    assert out["ap_per_class"]["a"] == [pytest.approx(0.5)]
    assert out["ap_per_class"]["b"] == [0.0]


def test_empty_predictions_give_zero():
    gt = {"v": [("a", 0.0, 10.0)], "w": [("b", 1.0, 2.0)]}
    out = evaluate_detection(gt, {}, TIOU_PRESETS["thumos14"])
    assert out["mAP"] == [0.0] * 7 and out["average_mAP"] == 0.0


def test_explicit_classes_order_and_classes_without_gt_skipped(caplog):
    gt = {"v": [("a", 0.0, 10.0), ("b", 20.0, 30.0)]}
    pred = {"v": [("b", 0.9, 20.0, 30.0)]}
    with caplog.at_level(logging.WARNING):
        out = evaluate_detection(gt, pred, [0.5], classes=["b", "a", "never"])
    assert list(out["ap_per_class"]) == ["b", "a"]
    assert out["mAP"] == [0.5]
    assert "never" in caplog.text
    with pytest.raises(ValueError, match="no instance"):
        evaluate_detection({"v": []}, pred, [0.5])


def test_multiple_videos_pool_predictions_per_class():
    gt = {"v1": [("a", 0.0, 10.0)], "v2": [("a", 5.0, 10.0)]}
    pred = {"v1": [("a", 0.3, 0.0, 10.0)],
            "v2": [("a", 0.9, 5.0, 10.0), ("a", 0.5, 100.0, 110.0)]}
    # ranked: TP(v2) .9, FP(v2) .5, TP(v1) .3 -> precision 1, .5, 2/3; recall .5, .5, 1
    assert evaluate_detection(gt, pred, [0.5])["mAP"] == [pytest.approx(5 / 6)]


# ---------------------------------------------------------------------------------------------
# Loaders


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_load_activitynet_json_with_string_segments_and_subset(tmp_path):
    gt_file = _write(tmp_path / "gt.json", {"database": {
        "v1": {"subset": "Test", "annotations": [{"label": "a", "segment": ["1.5", "4.0"]}]},
        "v2": {"subset": "train", "annotations": [{"label": "b", "segment": [0, 1]}]},
        "v3": {"subset": "test", "annotations": []},
    }})
    assert load_detection_ground_truth(gt_file, "test") == {"v1": [("a", 1.5, 4.0)], "v3": []}
    assert set(load_detection_ground_truth(gt_file)) == {"v1", "v2", "v3"}
    with pytest.raises(ValueError, match="no video in subset 'val'"):
        load_detection_ground_truth(gt_file, "val")


def test_loader_errors_name_file_and_item(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_detection_predictions(bad)
    no_results = _write(tmp_path / "p.json", {"result": {}})
    with pytest.raises(ValueError, match="missing key 'results'"):
        load_detection_predictions(no_results)
    no_score = _write(tmp_path / "p2.json", {"results": {"vid7": [
        {"label": "a", "score": 0.5, "segment": [0, 1]}, {"label": "a", "segment": [0, 1]}]}})
    with pytest.raises(ValueError, match=r"p2.json: video 'vid7' detection 1: missing key 'score'"):
        load_detection_predictions(no_score)
    bad_segment = _write(tmp_path / "p3.json", {"results": {"v": [
        {"label": "a", "score": 0.5, "segment": [0, "x"]}]}})
    with pytest.raises(ValueError, match="segment end 'x' is not a number"):
        load_detection_predictions(bad_segment)
    gt_no_subset = _write(tmp_path / "g.json", {"database": {"v9": {"annotations": []}}})
    with pytest.raises(ValueError, match="video 'v9': missing key 'subset'"):
        load_detection_ground_truth(gt_no_subset, "test")


def test_load_ground_truth_from_manifest(tmp_path):
    meta = ManifestMeta(dataset="toy", classes=("a", "b"))
    videos = [
        VideoRecord("v1", None, "test", 20.0, 10.0, 200, ("a",), (Segment("a", 1.0, 3.0),)),
        VideoRecord("v2", None, "val", 20.0, 10.0, 200, ("b",), (Segment("b", 2.0, 5.0),)),
        VideoRecord("v3", None, "test", 20.0, 10.0, 200, (), ()),
    ]
    root = write_manifest((meta, videos), tmp_path / "m")
    assert load_detection_ground_truth(root, "TEST") == {"v1": [("a", 1.0, 3.0)], "v3": []}
    assert load_detection_ground_truth(root / "videos.jsonl")["v2"] == [("b", 2.0, 5.0)]


def test_official_thumos14_gt_as_predictions_scores_one(annotations_root):
    gt_file = annotations_root / "thumos14/wtal/gt.json"
    if not gt_file.exists():
        pytest.skip(f"{gt_file} not found")
    gt = load_detection_ground_truth(gt_file, "test")
    pred = {video: [(label, 1.0, start, end) for label, start, end in items]
            for video, items in gt.items()}
    out = evaluate_detection(gt, pred, TIOU_PRESETS["thumos14"])
    assert out["mAP"] == [1.0] * 7
    assert len(out["ap_per_class"]) == 20


def test_input_order_does_not_matter_without_ties():
    rng = np.random.default_rng(1)
    gt = {f"v{i}": [("a" if rng.random() < 0.5 else "b", s, s + rng.uniform(1, 5))
                    for s in rng.uniform(0, 50, size=3)] for i in range(6)}
    pred = {video: [(label, float(rng.random()), s + rng.normal(0, 0.5), e + rng.normal(0, 0.5))
                    for label, s, e in items] + [("a", float(rng.random()), 10.0, 14.0)]
            for video, items in gt.items()}
    forward = evaluate_detection(gt, pred, TIOU_PRESETS["thumos14"])
    shuffled = {video: pred[video][::-1] for video in reversed(list(pred))}
    backward = evaluate_detection(gt, shuffled, TIOU_PRESETS["thumos14"])
    assert backward["ap_per_class"] == {k: pytest.approx(v)
                                        for k, v in forward["ap_per_class"].items()}
    assert all(0.0 <= ap <= 1.0 for aps in forward["ap_per_class"].values() for ap in aps)


def test_equal_iou_gts_are_tried_later_first_like_the_official_argsort():
    gt = {"v": [("a", 0.0, 10.0), ("a", 5.0, 15.0)]}
    # first prediction: IoU 7.5 / 12.5 = 0.6 with both GTs -> takes the later one ([5, 15]);
    # second prediction matches only [5, 15] well (IoU 1; 5/15 with [0, 10]) -> false positive
    pred = {"v": [("a", 0.9, 2.5, 12.5), ("a", 0.8, 5.0, 15.0)]}
    assert evaluate_detection(gt, pred, [0.5])["mAP"] == [pytest.approx(0.5)]
