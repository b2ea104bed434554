"""Train every method for a couple of epochs on a tiny synthetic store, predict, evaluate."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifests.schema import Manifest, write_manifest
from downstream.data import DataError
from downstream.data.synthetic import SyntheticFeatures, write_store
from downstream.metrics.detection import evaluate_files
from downstream.tal import METHODS
from downstream.training import predict_run, train_run
from tests.downstream.tiny_data import write_tiny

TINY = ["train.epochs=2", "train.batch_size=4", "train.lr=0.001", "data.max_snippets=24",
        "mil.hidden=16", "asl.hidden=16", "rskp.hidden=16", "lacp.hidden=16",
        "rskp.memory_warmup_epochs=1", "lacp.search_start_epoch=1", "lacp.search_every=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tal")
    return root, *write_tiny(root)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_predict_evaluate(tiny, method):
    root, manifest, manifest_dir, store = tiny
    torch.manual_seed(0)
    run = root / f"run_{method}"
    results = train_run(task="tal", method=method, features=store, manifest=manifest_dir, out=run,
                        overrides=TINY, progress=False)
    assert results["epochs"] == 2 and results["best_epoch"] in (1, 2)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert (run / "checkpoints" / "best.pt").exists() and (run / "config.yaml").exists()
    out = predict_run(run, features=store, manifest=manifest_dir, out=root / f"{method}.json",
                      progress=False)
    payload = json.loads(out.read_text())
    test_ids = {v.video_id for v in manifest.videos if v.split == "test"}
    assert set(payload["results"]) == test_ids
    for items in payload["results"].values():
        for d in items:
            assert d["label"] in manifest.classes and d["segment"][0] <= d["segment"][1]
    metrics = evaluate_files(manifest_dir, out, tiou=(0.1, 0.5), subset="test")
    assert 0.0 <= metrics["average_mAP"] <= 1.0


def test_cli_train_and_predict_match_the_python_api(tiny):
    from pipelines.main import cli

    root, _manifest, manifest_dir, store = tiny
    run = root / "cli_run"
    args = ["downstream", "train", "tal", "--method", "mil", "--features", str(store),
            "--manifest", str(manifest_dir), "--out", str(run)]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # One result line on the console; the numbers are in the run's results.json.
    assert result.output.strip().splitlines()[-1].startswith("tal mil: best val average_mAP")
    assert json.loads((run / "results.json").read_text())["epochs"] == 2
    pred = root / "cli.json"
    result = CliRunner().invoke(cli, ["downstream", "predict", str(run), "--features", str(store),
                                      "--manifest", str(manifest_dir), "--out", str(pred)])
    assert result.exit_code == 0, result.output
    api = predict_run(run, features=store, manifest=manifest_dir, out=root / "api.json",
                      progress=False)
    assert json.loads(pred.read_text()) == json.loads(api.read_text())
    # An existing run is not overwritten without --resume; unknown config keys are errors.
    # Both are one-line messages (exit 1), not tracebacks.
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--resume" in again.output
    assert "Traceback" not in again.output
    other = [str(root / "other") if a == str(run) else a for a in args]
    bad = CliRunner().invoke(cli, [*other, "--set", "train.epoch=3"])
    assert bad.exit_code == 1 and "train.epoch" in bad.output
    assert not (root / "other").exists()  # refused before the run folder is written


def test_resume_continues_from_the_last_epoch(tiny):
    root, _, manifest_dir, store = tiny
    run = root / "resume"
    train_run(task="tal", method="asl", features=store, manifest=manifest_dir, out=run,
              overrides=[*TINY, "train.epochs=1"], progress=False)
    results = train_run(task="tal", method="asl", features=store, manifest=manifest_dir, out=run,
                        overrides=[*TINY, "train.epochs=2"], resume=True, progress=False)
    epochs = [json.loads(line)["epoch"]
              for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and results["epochs"] == 2


def test_store_missing_videos_is_a_clear_error(tiny, tmp_path):
    _root, manifest, manifest_dir, _ = tiny
    partial = Manifest(manifest.meta, manifest.videos[:5])
    store = write_store(partial, tmp_path / "partial.zarr", SyntheticFeatures(dim=8))
    missing = sorted(v.video_id for v in manifest.videos[5:] if v.split == "train")
    with pytest.raises(DataError, match="missing") as info:
        train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=tmp_path / "r",
                  overrides=TINY, progress=False)
    assert missing[0] in str(info.value) and "data.missing=skip" in str(info.value)


def test_missing_videos_can_be_left_out_explicitly(tiny, tmp_path, caplog):
    _root, manifest, manifest_dir, _ = tiny
    kept = manifest.videos[:4] + tuple(v for v in manifest.videos[4:] if v.split != "train")
    store = write_store(Manifest(manifest.meta, kept), tmp_path / "partial.zarr",
                        SyntheticFeatures(dim=8))
    left_out = sorted(v.video_id for v in manifest.videos if v not in kept)
    results = train_run(task="tal", method="mil", features=store, manifest=manifest_dir,
                        out=tmp_path / "r", overrides=[*TINY, "train.epochs=1",
                                                       "data.missing=skip"], progress=False)
    assert results["train_items"] == sum(1 for v in kept if v.split == "train")
    assert left_out[0] in caplog.text


def test_predict_refuses_a_store_of_another_dimension(tiny, tmp_path):
    _, manifest, manifest_dir, store = tiny
    run = tmp_path / "run"
    train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=run,
              overrides=[*TINY, "train.epochs=1"], progress=False)
    other = write_store(manifest, tmp_path / "wide.zarr", SyntheticFeatures(dim=12))
    with pytest.raises(DataError, match="dim 12.*dim 8"):
        predict_run(run, features=other, manifest=manifest_dir, out=tmp_path / "p.json",
                    progress=False)


def test_lacp_needs_points(tiny, tmp_path):
    _, manifest, _, store = tiny
    no_points = Manifest(manifest.meta, tuple(replace(v, points=None) for v in manifest.videos))
    manifest_dir = write_manifest(no_points, tmp_path / "m")
    with pytest.raises(DataError, match="no points"):
        train_run(task="tal", method="lacp", features=store, manifest=manifest_dir, out=tmp_path / "r",
                  overrides=TINY, progress=False)


def test_predict_takes_post_processing_overrides_but_not_model_settings(tiny, tmp_path):
    from data_manifests.config import ConfigError

    _, _, manifest_dir, store = tiny
    run = tmp_path / "run"
    train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=run,
              overrides=[*TINY, "train.epochs=1"], progress=False)
    loose = predict_run(run, features=store, manifest=manifest_dir, out=tmp_path / "a.json",
                        progress=False)
    strict = predict_run(run, features=store, manifest=manifest_dir, out=tmp_path / "b.json",
                         overrides=["post.max_per_video=1"], checkpoint="last", progress=False)
    counts = [[len(v) for v in json.loads(p.read_text())["results"].values()]
              for p in (loose, strict)]
    assert max(counts[1]) == 1 < max(counts[0])
    with pytest.raises(ConfigError, match="only the tal sections"):
        predict_run(run, features=store, manifest=manifest_dir, out=tmp_path / "c.json",
                    overrides=["mil.hidden=3"], progress=False)
