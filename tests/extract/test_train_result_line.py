"""`weakfeat extract train` ends with one line: the run's headline result and its folder."""

from __future__ import annotations

import math

from extract.training.commands import result_line


def test_the_line_holds_map_views_top1_success_and_the_run():
    result = {"mode": "adaptfocus", "split": "test", "mAP": 0.632, "mAP_nanmean": 0.7,
              "views": "10x1", "top1_success": 0.714}
    assert result_line(result, "runs/af") == (
        "stage-1 adaptfocus: test mAP 63.2 (10x1 views), top-1 success 0.71; run runs/af")


def test_a_nan_map_falls_back_to_the_classes_present_and_no_segments_no_success():
    result = {"mode": "noisy", "split": "val", "mAP": math.nan, "mAP_nanmean": 0.75,
              "views": "2x1"}
    line = result_line(result, "r")
    assert line == "stage-1 noisy: val mAP (classes present) 75.0 (2x1 views); run r"
    assert "\n" not in line
