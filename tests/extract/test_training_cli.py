"""`weakfeat extract train` + `weakfeat extract evaluate` end to end on the `tiny` synthetic
preset (x3d-tiny, a few steps),
and load_trained_backbone (CONTRACTS T)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from click.testing import CliRunner

from data_manifests.synthetic import generate_benchmark
from extract.cli import extract
from extract.training import load_trained_backbone


@pytest.mark.slow
def test_train_then_evaluate(tmp_path):
    manifest = generate_benchmark("tiny", tmp_path / "data", seed=0)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"manifest": str(manifest), "num_workers": 1},
                                   "train": {"mode": "adaptfocus", "epochs": 2, "batch_size": 2,
                                             "log_every": 1}}))
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(extract, ["train", "--config", str(cfg), "--set", "optim.lr=0.01",
                                     "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (out / "checkpoints" / "last.pt").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 0.01
    # train evaluates its eval.split at the end with the config's views (default 10x1)
    assert json.loads((out / "results.json").read_text())["views"] == "10x1"

    result = runner.invoke(extract, ["evaluate", str(out), "--manifest", str(manifest),
                                     "--split", "test", "--views", "4x3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["num_videos"] == 2 and summary["views"] == "4x3"  # tiny: 2 test videos
    assert 0.0 <= summary["mAP_nanmean"] <= 1.0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["ap_per_class"]) == 4 and math.isfinite(saved["top1_success"])
    assert (out / "plot_training.png").stat().st_size > 0
    assert list(out.glob("plot_test_*.png"))
    assert len((out / "predictions" / "test_scores.txt").read_text().splitlines()) == 2

    # another split gets its own results file; the run's own results.json is kept
    result = runner.invoke(extract, ["evaluate", str(out), "--manifest", str(manifest),
                                     "--split", "train", "--views", "2x1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((out / "results_train.json").read_text())["num_videos"] == 8
    assert json.loads((out / "results.json").read_text()) == saved

    trained = load_trained_backbone(out)
    assert (trained.backbone, trained.mode, trained.supervision) == ("x3d-tiny", "adaptfocus",
                                                                      "weak")
    assert trained.model.head.out_features == 4 and len(trained.weights_sha256) == 64
    assert not trained.model.training

    # --resume on a finished run is a no-op that keeps the weights
    result = runner.invoke(extract, ["train", "--config", str(cfg), "--set", "optim.lr=0.01",
                                     "--out", str(out), "--resume"])
    assert result.exit_code == 0, repr(result.exception)
    assert load_trained_backbone(out).weights_sha256 == trained.weights_sha256


def test_train_input_errors_are_one_line_messages(tmp_path):
    manifest = generate_benchmark("tiny", tmp_path / "data", seed=0)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"manifest": str(manifest), "num_workers": 0}}))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}\n")  # an earlier run's folder
    runner = CliRunner()
    bad_key = runner.invoke(extract, ["train", "--config", str(cfg), "--set", "optim.lrr=1",
                                      "--out", str(tmp_path / "other")])
    taken = runner.invoke(extract, ["train", "--config", str(cfg), "--out", str(tmp_path / "run")])
    views = runner.invoke(extract, ["train", "--config", str(cfg), "--set", "eval.views_t=0",
                                    "--out", str(tmp_path / "views")])
    device = runner.invoke(extract, ["train", "--config", str(cfg), "--set", "train.device=gpu",
                                     "--out", str(tmp_path / "device")])
    backbone = runner.invoke(extract, ["train", "--config", str(cfg), "--set",
                                       "model.backbone=x4d", "--out", str(tmp_path / "bb")])
    for result, needle in ((bad_key, "optim.lrr"), (taken, "--resume"),
                           (views, "eval.views_t=0"), (device, "train.device='gpu'"),
                           (backbone, "x4d")):
        assert result.exit_code == 1 and "Error:" in result.output and needle in result.output
        assert "Traceback" not in result.output
    # a mistake found while setting up leaves no run folder behind
    assert not (tmp_path / "bb").exists() and not (tmp_path / "other").exists()
