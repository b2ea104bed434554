"""Charades multi-label mAP (Charades_v1_classify.m semantics)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from data_manifests.schema import ManifestMeta, VideoRecord, write_manifest
from downstream.metrics.classification import (
    average_precision,
    evaluate_files,
    multilabel_map,
    read_charades_csv,
    read_class_list,
    read_submission,
    score_matrix,
)


def test_hand_computed_ap():
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == (
        pytest.approx((1 + 2 / 3) / 2))
    # not interpolated: a late positive keeps its own low precision
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1])) == (
        pytest.approx(1 / 3))


def test_ties_keep_input_order():
    scores = np.array([0.5, 0.5])
    assert average_precision(scores, np.array([0, 1])) == pytest.approx(0.5)
    assert average_precision(scores, np.array([1, 0])) == pytest.approx(1.0)


def test_matches_sklearn_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.random((40, 5))
    targets = (rng.random((40, 5)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive
    out = multilabel_map(scores, targets)
    expected = [average_precision_score(targets[:, k], scores[:, k]) for k in range(5)]
    assert out["ap_per_class"] == pytest.approx(expected)
    assert out["mAP"] == pytest.approx(np.mean(expected))


def test_class_without_positives_is_nan_like_the_official_mean():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.1, 0.3, 0.2]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    out = multilabel_map(scores, targets)
    assert out["ap_per_class"][:2] == pytest.approx([1.0, 1.0])
    assert math.isnan(out["ap_per_class"][2])
    assert math.isnan(out["mAP"])  # MATLAB mean(ap) does not skip NaN
    assert math.isnan(out["wAP"])  # NaN * 0 is NaN in MATLAB too
    assert out["mAP_nanmean"] == pytest.approx(1.0)


def test_wap_weights_by_number_of_positives():
    scores = np.array([[0.9, 0.1], [0.8, 0.9], [0.7, 0.8], [0.6, 0.7]])
    targets = np.array([[1, 1], [0, 0], [0, 1], [0, 1]])
    out = multilabel_map(scores, targets)
    ap_b = (1 / 2 + 2 / 3 + 3 / 4) / 3  # positives of b at ranks 2, 3, 4
    assert out["ap_per_class"] == pytest.approx([1.0, ap_b])
    assert out["wAP"] == pytest.approx((1 * 1.0 + 3 * ap_b) / 4)
    assert out["mAP"] == pytest.approx((1.0 + ap_b) / 2)


def test_missing_predictions_score_minus_inf_and_rank_last(caplog):
    labels = {"v1": {"a"}, "v2": set(), "v3": {"a"}, "v4": {"b"}}
    preds = {"v1": np.array([0.9, 0.1]), "v4": np.array([0.8, 0.9]), "extra": np.zeros(2)}
    with caplog.at_level(logging.WARNING):
        scores, targets, videos = score_matrix(labels, preds, ["a", "b"])
    assert videos == ["v1", "v3", "v4"]  # v2 (no label) excluded
    assert np.isneginf(scores[1]).all()
    assert "v3" in caplog.text and "extra" in caplog.text
    out = multilabel_map(scores, targets)
    # class a: v1 (.9, +), v4 (.8, -), v3 (-inf, +) -> (1 + 2/3) / 2
    assert out["ap_per_class"][0] == pytest.approx((1 + 2 / 3) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        multilabel_map(np.zeros((3, 2)), np.zeros((3, 3)))


# ---------------------------------------------------------------------------------------------
# Loaders


@pytest.fixture
def charades_files(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("c000 Holding some clothes\nc001 Putting clothes somewhere\n"
                       "c002 Taking a cup\n")
    csv = tmp_path / "gt.csv"
    csv.write_text('id,subject,scene,actions,length\n'
                   'AAA,s1,Kitchen,"c000 0.0 5.0;c002 1.0 2.0",30\n'
                   'BBB,s2,Kitchen,,20\n'
                   'CCC,s3,Bedroom,c001 3.1 9.0,25\n'
                   'DDD,s4,Bedroom,c002 0.0 4.0,25\n')
    sub = tmp_path / "sub.txt"
    sub.write_text("AAA 0.9 0.1 0.8\nCCC 0.2 0.7 0.1\nDDD 0.1\t0.2\t0.9\nZZZ 1 1 1\n")
    return classes, csv, sub


def test_charades_loaders(charades_files):
    classes, csv, sub = charades_files
    names = read_class_list(classes)
    assert names == ["c000", "c001", "c002"]
    assert read_charades_csv(csv, names) == {"AAA": {"c000", "c002"}, "BBB": set(),
                                             "CCC": {"c001"}, "DDD": {"c002"}}
    assert read_submission(sub, 3)["DDD"] == pytest.approx([0.1, 0.2, 0.9])


def test_evaluate_files_on_charades_csv(charades_files):
    classes, csv, sub = charades_files
    out = evaluate_files(csv, sub, classes=classes)
    assert out["num_videos"] == 3 and out["classes"] == ["c000", "c001", "c002"]
    # c002: DDD .9 (+), AAA .8 (+), CCC .1 (-) -> 1
    assert out["ap_per_class"] == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="needs --classes"):
        evaluate_files(csv, sub)


def test_submission_errors_name_file_line_and_video(tmp_path):
    sub = tmp_path / "sub.txt"
    sub.write_text("AAA 0.1 0.2\nBBB 0.1\n")
    with pytest.raises(ValueError, match=r"sub.txt:2: video 'BBB' has 1 scores, expected 2"):
        read_submission(sub, 2)
    sub.write_text("AAA 0.1 zz\n")
    with pytest.raises(ValueError, match=r"sub.txt:1: video 'AAA'"):
        read_submission(sub, 2)


def test_unknown_class_in_csv_is_an_error(tmp_path):
    csv = tmp_path / "gt.csv"
    csv.write_text("id,actions\nAAA,c999 0 1\n")
    with pytest.raises(ValueError, match=r"gt.csv:2: video 'AAA': class 'c999'"):
        read_charades_csv(csv, ["c000"])


def test_evaluate_files_on_manifest(tmp_path):
    meta = ManifestMeta(dataset="toy", classes=("a", "b", "c"))
    videos = [VideoRecord("v1", None, "test", 10.0, 10.0, 100, ("a",)),
              VideoRecord("v2", None, "test", 10.0, 10.0, 100, ("a", "b")),
              VideoRecord("v3", None, "train", 10.0, 10.0, 100, ("c",))]
    root = write_manifest((meta, videos), tmp_path / "m")
    sub = tmp_path / "sub.txt"
    sub.write_text("v1 0.2 0.9 0.0\nv2 0.8 0.1 0.0\nv3 0 0 1\n")
    out = evaluate_files(root, sub, subset="test")
    assert out["num_videos"] == 2
    assert out["ap_per_class"][:2] == pytest.approx([1.0, 0.5])
    assert math.isnan(out["ap_per_class"][2]) and math.isnan(out["mAP"])
    assert out["mAP_nanmean"] == pytest.approx(0.75)
    assert evaluate_files(root, sub)["mAP"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)


def test_official_charades_test_gt_as_submission_scores_one(annotations_root, tmp_path):
    root = annotations_root / "charades"
    if not (root / "Charades_v1_test.csv").exists():
        pytest.skip(f"{root} has no Charades_v1_test.csv")
    names = read_class_list(root / "Charades_v1_classes.txt")
    labels = read_charades_csv(root / "Charades_v1_test.csv", names)
    sub = tmp_path / "sub.txt"
    sub.write_text("".join(f"{video} " + " ".join("1" if c in found else "0" for c in names)
                           + "\n" for video, found in labels.items()))
    out = evaluate_files(root / "Charades_v1_test.csv", sub,
                         classes=root / "Charades_v1_classes.txt")
    assert len(out["ap_per_class"]) == 157
    assert out["mAP"] == 1.0 and out["wAP"] == 1.0
    assert out["num_videos"] == sum(1 for found in labels.values() if found)
