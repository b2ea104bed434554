"""`weakfeat downstream evaluate` end to end on tiny files; CLI == Python API."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from downstream.metrics.commands import evaluate_command
from downstream.metrics.evaluate import evaluate, format_table, to_json


def run(*args: str):
    return CliRunner().invoke(evaluate_command, [str(a) for a in args])


@pytest.fixture
def tal_files(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {
        "v1": {"subset": "test", "annotations": [{"label": "a", "segment": ["0", "10"]},
                                                 {"label": "b", "segment": [20, 30]}]},
        "v2": {"subset": "validation", "annotations": [{"label": "a", "segment": [0, 5]}]}}}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {"v1": [
        {"label": "a", "score": 0.9, "segment": [0, 10]},
        {"label": "b", "score": 0.8, "segment": [20, 24]}]}}))  # b: IoU 0.4
    return gt, pred


def test_tal_json_equals_python_api(tal_files):
    gt, pred = tal_files
    result = run("tal", "-g", gt, "-p", pred, "--subset", "test", "--tiou", "0.3,0.5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == json.loads(to_json(evaluate("tal", gt, pred, subset="test", tiou="0.3,0.5")))
    assert out["mAP"] == [1.0, 0.5] and out["average_mAP"] == 0.75
    assert out["ap_per_class"] == {"a": [1.0, 1.0], "b": [1.0, 0.0]}
    assert out["num_videos"] == 1


def test_out_file_holds_the_same_json_as_stdout(tmp_path, tal_files):
    gt, pred = tal_files
    out = tmp_path / "results.json"
    result = run("tal", "-g", gt, "-p", pred, "--tiou", "0.3,0.5", "--json", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(result.stdout)


def test_tal_human_table_default_thumos_thresholds(tal_files):
    gt, pred = tal_files
    result = run("tal", "-g", gt, "-p", pred, "--subset", "TEST")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["mAP@0.1", "1.0000"]
    assert lines[-2].split() == ["average_mAP", f"{(4 * 1.0 + 3 * 0.5) / 7:.4f}"]


def test_tal_empty_prediction_file(tmp_path, tal_files):
    gt, _ = tal_files
    empty = tmp_path / "empty.json"
    empty.write_text('{"results": {}}')
    out = json.loads(run("tal", "-g", gt, "-p", empty, "--json").stdout)
    assert out["average_mAP"] == 0.0 and out["mAP"] == [0.0] * 7


def test_bad_inputs_give_clear_errors(tmp_path, tal_files):
    gt, pred = tal_files
    broken = tmp_path / "broken.json"
    broken.write_text('{"results": {"v1": [ {"label": "a",')
    result = run("tal", "-g", gt, "-p", broken)
    assert result.exit_code != 0
    assert "broken.json: not valid JSON" in result.output
    missing = tmp_path / "missing_key.json"
    missing.write_text(json.dumps({"results": {"v1": [{"label": "a", "score": 1}]}}))
    result = run("tal", "-g", gt, "-p", missing)
    assert result.exit_code != 0
    assert "missing_key.json: video 'v1' detection 0: missing key 'segment'" in result.output
    result = run("tal", "-g", gt, "-p", pred, "--background", "SIL")
    assert result.exit_code != 0 and "--background does not apply to task 'tal'" in result.output
    result = run("tal", "-g", gt, "-p", pred, "--tiou", "coco")
    assert result.exit_code != 0 and "--tiou 'coco'" in result.output
    result = run("tal", "-g", gt, "-p", pred, "--subset", "train")
    assert result.exit_code != 0 and "no video in subset 'train'" in result.output


def test_cls_nan_becomes_null_in_json(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("c000 Holding\nc001 Putting\nc002 Taking\n")
    csv = tmp_path / "gt.csv"
    csv.write_text("id,actions\nA,c000 0 1\nB,c001 0 1\nC,\n")
    sub = tmp_path / "sub.txt"
    sub.write_text("A 0.9 0.1 0.5\nB 0.2 0.8 0.5\nC 1 1 1\n")
    result = run("cls", "-g", csv, "-p", sub, "--classes", classes, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mAP"] is None and out["wAP"] is None and out["mAP_nanmean"] == 1.0
    assert out["ap_per_class"] == [1.0, 1.0, None] and out["num_videos"] == 2
    table = run("cls", "-g", csv, "-p", sub, "--classes", classes).stdout
    assert "mAP          nan" in table and "mAP_nanmean  1.0000" in table


def test_seg_and_tsg_through_the_cli(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    (gt_dir / "v.txt").write_text("SIL\nx\nx\nx\nx\nx\n")
    (pred_dir / "v.txt").write_text("SIL\nSIL\nSIL\nx\nx\nx\n")
    out = json.loads(run("seg", "-g", gt_dir, "-p", pred_dir, "--background", "SIL",
                         "--background", "background", "--json").stdout)
    assert out["F1@50"] == 1.0 and out["Acc"] == pytest.approx(4 / 6)
    assert out == json.loads(to_json(evaluate("seg", gt_dir, pred_dir,
                                              background=("SIL", "background"))))
    (pred_dir / "v.txt").write_text("x\n")
    result = run("seg", "-g", gt_dir, "-p", pred_dir)
    assert result.exit_code != 0 and "video 'v': ground truth has 6 frames" in result.output

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps([{"video": "v", "sentence_index": 0, "duration": 10,
                               "segment": [0, 4]}]))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"video": "v", "sentence_index": 0,
                                 "moments": [[5, 9, 0.9], [0, 3, 0.8]]}]))
    out = json.loads(run("tsg", "-g", gt, "-p", pred, "--recall", "1,2", "--iou", "0.5,0.8",
                         "--nms", "0.5", "--json").stdout)
    assert out == {"task": "tsg", "R@1,IoU=0.5": 0.0, "R@1,IoU=0.8": 0.0,
                   "R@2,IoU=0.5": 1.0, "R@2,IoU=0.8": 0.0, "num_queries": 1, "mIoU": 0.0}
    assert "R@2,IoU=0.5" in format_table(out)
