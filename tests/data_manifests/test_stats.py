"""manifest_stats: counts in total and per split, kept-apart items, the table and the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner

from data_manifests.cli import data
from data_manifests.converters.common import KEPT_APART_FILE
from data_manifests.schema import (
    ManifestMeta,
    Point,
    Segment,
    Sentence,
    VideoRecord,
    load_manifest,
    write_manifest,
)
from data_manifests.stats import format_stats, manifest_stats

META = ManifestMeta(dataset="toy", classes=("a", "b", "c"), activities=("x", "y"))


def record(video_id, split, labels=(), segments=None, points=None, activity=None, sentences=None,
           duration=1800.0):
    return VideoRecord(video_id, f"{video_id}.mp4", split, duration, 10.0, int(duration * 10),
                       labels, segments, points, activity, sentences)


VIDEOS = (
    record("t1", "train", ("a", "b"), (Segment("a", 0, 1), Segment("b", 1, 2),
                                       Segment("a", 5, 6)), (Point("a", 0.5),), "x"),
    record("t2", "train", (), (), (), "y"),
    record("v1", "val", ("c",), (Segment("c", 0, 1),), None, "x",
           (Sentence("s", 0, 1), Sentence("t", 1, 2, 1.5))),
    record("e1", "test", duration=3600.0),
)


def test_counts_per_split_and_total(tmp_path):
    folder = write_manifest((META, VIDEOS), tmp_path / "m")
    (folder / KEPT_APART_FILE).write_text(
        '{"split": "train", "reason": "ambiguous"}\n{"split": "train", "reason": "ambiguous"}\n'
        '{"split": null, "reason": "outside_video", "kind": "segment"}\n'
        '{"split": "val", "reason": "zero_length", "kind": "sentence"}\n')
    stats = manifest_stats(load_manifest(folder))
    assert (stats["dataset"], stats["num_classes"], stats["num_activities"]) == ("toy", 3, 2)
    assert list(stats["splits"]) == ["train", "val", "test"]  # conventional order
    assert stats["splits"]["train"] == {
        "videos": 2, "videos_with_labels": 1, "classes": 2, "segments": 3, "points": 1,
        "sentences": 0, "activities": 2, "hours": 1.0, "kept_apart": {"ambiguous": 2},
        "source_segments": 3, "source_sentences": 0}
    assert stats["splits"]["val"]["sentences"] == 2 and stats["splits"]["val"]["points"] == 0
    assert stats["splits"]["val"]["source_sentences"] == 3
    assert stats["splits"]["test"] == {
        "videos": 1, "videos_with_labels": 0, "classes": 0, "segments": 0, "points": 0,
        "sentences": 0, "activities": 0, "hours": 1.0, "kept_apart": {},
        "source_segments": 0, "source_sentences": 0}
    assert stats["total"] == {
        "videos": 4, "videos_with_labels": 2, "classes": 3, "segments": 4, "points": 1,
        "sentences": 2, "activities": 2, "hours": 2.5,
        "kept_apart": {"ambiguous": 2, "outside_video": 1, "zero_length": 1},
        "source_segments": 5, "source_sentences": 3}


def test_table_and_cli(tmp_path):
    folder = write_manifest((META, VIDEOS), tmp_path / "m")  # no kept_apart.jsonl: none
    stats = manifest_stats(load_manifest(folder))
    table = format_stats(stats).splitlines()
    assert table[0] == "toy: 3 classes, 2 activities"
    assert table[1].split() == ["split", "videos", "videos_with_labels", "classes", "segments",
                                "points", "sentences", "activities", "hours", "kept_apart"]
    assert table[2].split() == ["train", "2", "1", "2", "3", "1", "0", "2", "1.0", "-"]
    assert table[-1].split()[:5] == ["total", "4", "2", "3", "4"]
    runner = CliRunner()
    result = runner.invoke(data, ["stats", str(folder), "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == stats
    result = runner.invoke(data, ["stats", str(folder)])
    assert result.exit_code == 0 and result.output.splitlines() == table
    result = runner.invoke(data, ["stats", str(tmp_path / "none")])
    assert result.exit_code != 0 and "meta.json: missing" in result.output
