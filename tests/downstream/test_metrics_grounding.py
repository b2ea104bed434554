"""Sentence grounding R@n,IoU=m (MMN evaluation.py semantics) on hand-computed cases."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from data_manifests.schema import ManifestMeta, Sentence, VideoRecord, write_manifest
from downstream.metrics.grounding import (
    evaluate_files,
    load_grounding_ground_truth,
    load_grounding_predictions,
    metric_name,
    moment_iou,
    nms,
    recall_at_iou,
)


def test_metric_names():
    assert metric_name(1, 0.5) == "R@1,IoU=0.5"
    assert metric_name(5, 0.7) == "R@5,IoU=0.7"


def test_moment_iou():
    assert moment_iou(np.array([[0, 2], [2, 6], [5, 9]]), (0, 4)) == pytest.approx(
        [0.5, 2 / 6, 0.0])


def test_nms_suppresses_strictly_above_threshold():
    moments = np.array([[0, 4], [0, 2], [0, 3], [10, 12]], dtype=float)
    scores = np.array([0.9, 0.8, 0.85, 0.1])
    # sorted: [0,4] .9, [0,3] .85 (IoU .75 > .5: gone), [0,2] .8 (IoU .5 exactly: kept), [10,12]
    kept = nms(moments, scores, 0.5)
    assert kept.tolist() == [[0, 4], [0, 2], [10, 12]]
    # a suppressed moment suppresses nothing: [0,3] would remove [0,2] (IoU 2/3) at 0.6
    assert nms(moments, scores, 0.6).tolist() == [[0, 4], [0, 2], [10, 12]]
    assert nms(np.zeros((0, 2)), np.zeros(0), 0.5).shape == (0, 2)


def test_hit_at_iou_exactly_threshold():
    gt = {("v", 0): (10.0, 0.0, 4.0)}
    pred = {("v", 0): [(0.0, 2.0, 1.0)]}  # IoU 0.5
    out = recall_at_iou(gt, pred, recall=(1,), iou=(0.5, 0.7))
    assert out == {"R@1,IoU=0.5": 1.0, "R@1,IoU=0.7": 0.0, "num_queries": 1}


def test_ground_truth_is_clipped_to_the_video():
    pred = {("v", 0): [(0.0, 4.0, 1.0)], ("v", 1): [(6.0, 10.0, 1.0)]}
    gt = {("v", 0): (10.0, -2.0, 4.0), ("v", 1): (10.0, 6.0, 12.0)}
    # clipped: [0, 4] and [6, 10], IoU 1; unclipped the IoUs would be 4/6 < 0.7
    assert recall_at_iou(gt, pred, recall=(1,), iou=(0.7,))["R@1,IoU=0.7"] == 1.0


def test_nms_moves_the_right_moment_into_the_top_n():
    gt = {("v", 0): (40.0, 20.0, 30.0)}
    pred = {("v", 0): [(0.0, 10.0, 0.9), (0.0, 9.0, 0.8), (20.0, 30.0, 0.7)]}
    out = recall_at_iou(gt, pred, recall=(1, 2), iou=(0.5,), nms_threshold=0.5)
    assert out["R@1,IoU=0.5"] == 0.0 and out["R@2,IoU=0.5"] == 1.0
    no_nms = recall_at_iou(gt, pred, recall=(1, 2), iou=(0.5,), nms_threshold=1.0)
    assert no_nms["R@2,IoU=0.5"] == 0.0


def test_tied_scores_keep_input_order():
    gt = {("v", 0): (10.0, 0.0, 4.0)}
    wrong, right = (6.0, 9.0, 0.5), (0.0, 4.0, 0.5)
    assert recall_at_iou(gt, {("v", 0): [wrong, right]}, recall=(1,), iou=(0.5,))[
        "R@1,IoU=0.5"] == 0.0
    assert recall_at_iou(gt, {("v", 0): [right, wrong]}, recall=(1,), iou=(0.5,))[
        "R@1,IoU=0.5"] == 1.0


def test_missing_queries_are_misses_and_extra_ones_ignored(caplog):
    gt = {("v", 0): (10.0, 0.0, 4.0), ("v", 1): (10.0, 5.0, 9.0), ("w", 0): (5.0, 1.0, 2.0)}
    pred = {("v", 0): [(0.0, 4.0, 1.0)], ("w", 0): [], ("zz", 3): [(0.0, 1.0, 1.0)]}
    with caplog.at_level(logging.WARNING):
        out = recall_at_iou(gt, pred)
    assert out["R@1,IoU=0.5"] == pytest.approx(1 / 3) and out["R@5,IoU=0.7"] == pytest.approx(1 / 3)
    assert out["num_queries"] == 3
    assert "v#1" in caplog.text and "zz#3" in caplog.text


def test_loaders_and_errors(tmp_path):
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps([
        {"video": "v", "sentence_index": 0, "duration": 10, "segment": [1, 3]},
        {"video": "v", "sentence_index": 1, "duration": 10, "segment": ["2.5", 8]}]))
    assert load_grounding_ground_truth(gt_file) == {("v", 0): (10.0, 1.0, 3.0),
                                                    ("v", 1): (10.0, 2.5, 8.0)}
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps([
        {"video": "v", "sentence_index": 0, "moments": [[1, 3, 0.9], [0, 10, 0.5]]},
        {"video": "v", "sentence_index": 1, "moments": [[0, 1, 0.9]]}]))
    assert load_grounding_predictions(pred_file)[("v", 0)] == [(1.0, 3.0, 0.9), (0.0, 10.0, 0.5)]
    out = evaluate_files(gt_file, pred_file, recall="1", iou="0.5")
    assert out == {"R@1,IoU=0.5": 0.5, "num_queries": 2, "mIoU": 0.5}  # top-1 IoUs 1 and 0

    pred_file.write_text(json.dumps([{"video": "v", "sentence_index": 0,
                                      "moments": [[1, 3]]}]))
    with pytest.raises(ValueError, match=r"pred.json: item 0 \('v', sentence 0\): moment 0"):
        load_grounding_predictions(pred_file)
    pred_file.write_text(json.dumps([{"video": "v", "moments": []}]))
    with pytest.raises(ValueError, match=r"item 0 \('v'\): missing key 'sentence_index'"):
        load_grounding_predictions(pred_file)
    pred_file.write_text(json.dumps({"v": []}))
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_grounding_predictions(pred_file)
    pred_file.write_text("[{")
    with pytest.raises(ValueError, match="pred.json: not valid JSON"):
        load_grounding_predictions(pred_file)
    with pytest.raises(ValueError, match="--iou"):
        evaluate_files(gt_file, gt_file, iou="0.5,2")


def test_ground_truth_from_manifest(tmp_path):
    meta = ManifestMeta(dataset="toy", classes=())
    sentences = (Sentence("a person opens a door", 1.0, 3.0), Sentence("then sits", 4.0, 9.5))
    videos = [VideoRecord("v", None, "test", 9.0, 10.0, 90, sentences=sentences)]
    root = write_manifest((meta, videos), tmp_path / "m")
    gt = load_grounding_ground_truth(root, "test")
    assert gt == {("v", 0): (9.0, 1.0, 3.0), ("v", 1): (9.0, 4.0, 9.5)}
    pred = {("v", 0): [(1.0, 3.0, 1.0)], ("v", 1): [(4.0, 9.0, 1.0)]}  # [4, 9.5] clips to [4, 9]
    assert recall_at_iou(gt, pred, recall=(1,), iou=(0.9,))["R@1,IoU=0.9"] == 1.0
