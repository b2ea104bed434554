"""`weakfeat extract status`: per-shard progress of a partly exported store, exit codes."""

from __future__ import annotations

import json
import os
import socket

from click.testing import CliRunner

from extract.cli import extract as extract_cli
from extract.clip_grid import shard_index
from extract.store import layout
from extract.store.export import export_features
from extract.store.status import export_status, format_status
from tests.extract.test_export import SPEC, make_manifest

# id -> frames (-1: corrupt). make_manifest puts every third video (0, 3, 6) in "train".
VIDEOS = {"long": 30, "short": 5, "exact": 15, "mid": 20, "corrupt": -1, "v5": 12, "v6": 9,
          "v7": 20}
SHARD_OF_2 = {"long": 0, "short": 0, "exact": 0, "v6": 0, "mid": 1, "corrupt": 1, "v5": 1,
              "v7": 1}


def rows(report):
    return [(r["selected"], r["complete"], r["failed"], r["remaining"])
            for r in report["per_shard"]]


def test_status_of_a_partly_exported_store(tmp_path):
    assert {v: shard_index(v, 2) for v in VIDEOS} == SHARD_OF_2  # (the counts below rely on it)
    root = make_manifest(tmp_path / "m", VIDEOS)
    store = tmp_path / "s.zarr"
    runner = CliRunner()
    status = ["status", str(store), "--manifest", str(root), "--shards", "2"]

    # shard 0, train split only: long and v6 done, short and exact (test) not yet
    export_features(model_spec=SPEC, manifest=root, store=store, split="train", shard=(0, 2),
                    device="cpu", progress=False)
    report = export_status(store, manifest=root, shards=2)
    assert rows(report) == [(4, 2, 0, 2), (4, 0, 0, 4)]
    assert report["totals"] == {"selected": 8, "complete": 2, "failed": 0, "remaining": 6}
    assert report["state"] == "running" and report["last_failure"] is None
    assert runner.invoke(extract_cli, status).exit_code == 3  # work remains, nothing failed

    # shard 1, all of it: mid, v5, v7 done, corrupt fails
    export_features(model_spec=SPEC, manifest=root, store=store, shard=(1, 2), device="cpu",
                    progress=False)
    # a video being written right now (a live writer's staging entry: this process)
    staged = store / layout.STAGING_DIR / layout.staging_name(layout.encode_id("short"))
    staged.mkdir()
    report = export_status(store, manifest=root, shards=2)
    assert rows(report) == [(4, 2, 0, 2), (4, 3, 1, 0)]
    assert report["totals"] == {"selected": 8, "complete": 5, "failed": 1, "remaining": 2}
    assert list(report["per_shard"][1]["failures"]) == ["corrupt"]
    assert "corrupt.mp4" in report["per_shard"][1]["failures"]["corrupt"]
    assert report["writing"] == [{"video_id": "short", "host": socket.gethostname(),
                                  "pid": str(os.getpid())}]
    assert report["last_failure"]["video_id"] == "corrupt"
    assert report["last_failure"]["host"] == socket.gethostname()
    assert report["state"] == "failed"

    result = runner.invoke(extract_cli, status)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:4] == [
        f"{store}: 5 of 8 selected videos complete, 1 failed, 2 remaining (2 shards)",
        "  shard  selected  complete  failed  remaining",
        "    0/2         4         2       0          2",
        "    1/2         4         3       1          0"]
    assert lines[4].startswith("      FAILED corrupt: ")
    assert lines[5] == f"  being written: 1: short ({socket.gethostname()})"
    assert lines[6].startswith("  last failure: corrupt at 20")
    assert lines[6].endswith(f" on {socket.gethostname()}") and len(lines) == 7

    result = runner.invoke(extract_cli, [*status, "--json"])
    assert result.exit_code == 1
    parsed = json.loads(result.output)
    assert rows(parsed) == rows(report) and parsed["totals"] == report["totals"]

    # the train split is done (long, v6 in shard 0; mid in shard 1), whatever the shard count
    report = export_status(store, manifest=root, split="train", shards=3)
    assert report["totals"] == {"selected": 3, "complete": 3, "failed": 0, "remaining": 0}
    assert sum(r["selected"] for r in report["per_shard"]) == 3 and report["state"] == "complete"
    result = runner.invoke(extract_cli, ["status", str(store), "--manifest", str(root),
                                         "--split", "train"])
    assert result.exit_code == 0, result.output
    assert "3 of 3 selected videos complete, 0 failed, 0 remaining (split train, 1 shard)" in (
        result.output)

    # without a manifest: what the store alone knows
    report = export_status(store)
    assert (report["complete"], report["failed"], report["state"]) == (5, 1, "failed")
    assert "per_shard" not in report and list(report["failures"]) == ["corrupt"]
    text = format_status(report).splitlines()
    assert text[0] == (f"{store}: 5 videos complete, 1 failed (give --manifest for per-shard "
                       "progress)")
    assert runner.invoke(extract_cli, ["status", str(store)]).exit_code == 1


def test_status_user_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(extract_cli, ["status", str(tmp_path / "none.zarr")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {tmp_path / 'none.zarr'}: "), lines
    result = runner.invoke(extract_cli, ["status", str(tmp_path / "none.zarr"), "--shards", "2"])
    assert result.exit_code == 2 and "--split and --shards need --manifest" in result.output
