"""Action segmentation metrics (MS-TCN eval.py semantics) on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from downstream.metrics.segmentation import (
    edit_score,
    evaluate_files,
    evaluate_segmentation,
    f1_counts,
    levenshtein,
    read_label_file,
    segments_of,
)

BG = "background"


def frames(*runs: tuple[str, int]) -> list[str]:
    return [label for label, count in runs for _ in range(count)]


# GT: a[0,10) bg[10,11) a[11,14); prediction: a[0,3) b[3,4) a[4,13) bg[13,14)
GT = frames(("a", 10), (BG, 1), ("a", 3))
PRED = frames(("a", 3), ("b", 1), ("a", 9), (BG, 1))


def test_segments_drop_background_and_use_exclusive_ends():
    assert segments_of(GT) == (["a", "a"], [0, 11], [10, 14])
    assert segments_of(PRED) == (["a", "b", "a"], [0, 3, 4], [3, 4, 13])
    assert segments_of([BG, BG]) == ([], [], [])
    assert segments_of([]) == ([], [], [])


def test_levenshtein_and_edit():
    assert levenshtein(list("kitten"), list("sitting")) == 3
    assert levenshtein([], ["a", "b"]) == 2
    assert edit_score(PRED, GT) == pytest.approx(1 - 1 / 3)


def test_f1_compares_each_prediction_with_its_single_best_gt_segment():
    # a[4,13) has its best IoU (6/13) with the first GT a, already hit by a[0,3) at 0.1; the
    # official code does not fall back to the second GT a (IoU 2/10 >= 0.1): false positive.
    assert f1_counts(PRED, GT, 0.10) == (1, 2, 1)
    assert f1_counts(PRED, GT, 0.25) == (1, 2, 1)
    assert f1_counts(PRED, GT, 0.50) == (0, 3, 2)


def test_hand_computed_video():
    out = evaluate_segmentation({"v": GT}, {"v": PRED})
    assert out["Acc"] == pytest.approx(11 / 14)
    assert out["Edit"] == pytest.approx(2 / 3)
    assert out["F1@10"] == pytest.approx(0.4)  # P = 1/3, R = 1/2
    assert out["F1@25"] == pytest.approx(0.4)
    assert out["F1@50"] == 0.0
    # frame level: a: I 11, U 14, D 12; b: I 0, U 1, D 1
    assert out["IoU"] == pytest.approx((11 / 14 + 0) / 2)
    assert out["IoD"] == pytest.approx((11 / 12 + 0) / 2)


def test_iou_exactly_at_threshold_is_a_hit():
    gt = frames(("a", 4))
    pred = frames(("a", 2), (BG, 2))  # IoU 2 / 4 = 0.5
    assert f1_counts(pred, gt, 0.5) == (1, 0, 0)
    out = evaluate_segmentation({"v": gt}, {"v": pred}, overlaps=(0.5, 0.75))
    assert out["F1@50"] == 1.0 and out["F1@75"] == 0.0


def test_f1_sums_counts_over_videos_and_acc_pools_frames():
    gt = {"v1": frames(("a", 4)), "v2": frames(("b", 2), ("c", 2), ("d", 4))}
    pred = {"v1": frames(("a", 4)), "v2": frames(("b", 2), ("x", 6))}
    out = evaluate_segmentation(gt, pred)
    # v1: tp 1; v2: b tp, x fp, c and d fn -> tp 2, fp 1, fn 2: P 2/3, R 1/2
    assert out["F1@50"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert out["Acc"] == pytest.approx(6 / 12)  # pooled frames, not a mean of (1, 0.25)
    assert out["Edit"] == pytest.approx((1.0 + (1 - 2 / 3)) / 2)  # mean over videos


def test_background_labels_are_configurable():
    gt = frames(("SIL", 1), ("x", 5))
    pred = frames(("SIL", 3), ("x", 3))
    default = evaluate_segmentation({"v": gt}, {"v": pred})
    assert default["F1@50"] == pytest.approx(0.5)  # SIL is an action: IoU 1/3 misses at 0.5
    named = evaluate_segmentation({"v": gt}, {"v": pred}, background=("SIL",))
    assert named["F1@50"] == 1.0 and named["Edit"] == 1.0
    assert named["Acc"] == default["Acc"] == pytest.approx(4 / 6)  # background frames count


def test_all_background_videos():
    both_bg = evaluate_segmentation({"v": [BG] * 5}, {"v": [BG] * 5})
    assert both_bg["Acc"] == 1.0 and both_bg["Edit"] == 1.0
    assert both_bg["F1@10"] == 0.0  # no segment at all: no true positive
    assert math.isnan(both_bg["IoU"]) and math.isnan(both_bg["IoD"])
    spurious = evaluate_segmentation({"v": [BG] * 4}, {"v": [BG, "a", "a", BG]})
    assert f1_counts([BG, "a", "a", BG], [BG] * 4, 0.1) == (0, 1, 0)
    assert spurious["Edit"] == 0.0 and spurious["IoU"] == 0.0 and spurious["IoD"] == 0.0
    mixed = evaluate_segmentation({"v": [BG] * 4, "w": ["a"] * 4}, {"v": [BG] * 4, "w": ["a"] * 4})
    assert mixed["IoU"] == 1.0  # the all-background video is skipped, not counted as 0


def test_length_mismatch_names_video_and_lengths():
    with pytest.raises(ValueError, match=r"video 'v7': ground truth has 3 frames but the "
                                         r"prediction has 2"):
        evaluate_segmentation({"v7": ["a"] * 3}, {"v7": ["a"] * 2})
    with pytest.raises(ValueError, match="no prediction: v8"):
        evaluate_segmentation({"v8": ["a"]}, {})


def test_folders(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    (gt_dir / "v1.txt").write_text("\n".join(GT) + "\n")
    (gt_dir / "v2.txt").write_text("a\na\nb\n")
    (pred_dir / "v1.txt").write_text("\n".join(PRED) + "\n")
    # MS-TCN's own result layout: a header line, then all labels on one line, no suffix
    (pred_dir / "v2").write_text("### Frame level recognition: ###\na b b\n")
    assert read_label_file(pred_dir / "v2") == ["a", "b", "b"]
    out = evaluate_files(gt_dir, pred_dir)
    assert out["num_videos"] == 2
    assert out["Acc"] == pytest.approx((11 + 2) / 17)
    (pred_dir / "v2").unlink()
    with pytest.raises(ValueError, match=r"pred: no prediction file for 1 .*v2"):
        evaluate_files(gt_dir, pred_dir)
    (pred_dir / "v2.txt").write_text("a\n")
    with pytest.raises(ValueError, match=r"video 'v2': ground truth has 3 frames"):
        evaluate_files(gt_dir, pred_dir)


def test_official_breakfast_gt_against_itself(annotations_root):
    folder = annotations_root / "breakfast/groundTruth"
    files = sorted(folder.glob("*.txt"))[:3] if folder.is_dir() else []
    if not files:
        pytest.skip(f"no Breakfast ground truth under {folder}")
    gt = {path.stem: read_label_file(path) for path in files}
    shifted = {video: labels[1:] + labels[-1:] for video, labels in gt.items()}
    assert evaluate_segmentation(gt, gt) == {
        "Acc": 1.0, "Edit": 1.0, "F1@10": 1.0, "F1@25": 1.0, "F1@50": 1.0, "IoU": 1.0,
        "IoD": 1.0, "num_videos": 3}
    assert "SIL" in next(iter(gt.values()))  # Breakfast's background is SIL, an action here
    out = evaluate_segmentation(gt, shifted, background=("SIL",))
    assert 0.9 < out["Acc"] < 1.0 and out["F1@50"] == 1.0
