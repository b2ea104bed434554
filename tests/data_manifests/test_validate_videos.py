"""validate_videos: every missing, unreadable or mis-timed video is reported, not just the first."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from data_manifests.cli import data
from data_manifests.schema import ManifestMeta, VideoRecord, load_manifest, write_manifest
from data_manifests.validate_videos import summarize, validate_videos


def write_mp4(path: Path, num_frames: int = 20, fps: int = 10) -> Path:
    """A tiny H.264 video (32x32) lasting ``num_frames / fps`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            image = np.full((32, 32, 3), (i * 12) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def record(video_id: str, duration: float, path: str | None = "") -> VideoRecord:
    return VideoRecord(video_id, f"videos/{video_id}.mp4" if path == "" else path, "test",
                       duration, 10.0, int(duration * 10))


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_mp4(root / "videos/good.mp4")
    write_mp4(root / "videos/long.mp4")
    (root / "videos/empty.mp4").write_bytes(b"")
    (root / "videos/garbage.mp4").write_bytes(b"this is not a video" * 100)
    good = (root / "videos/good.mp4").read_bytes()
    (root / "videos/cut.mp4").write_bytes(good[: len(good) // 3])
    return root


def manifest_with(folder: Path, records) -> Path:
    return write_manifest((ManifestMeta("toy", ("a",)), tuple(records)), folder)


def test_lists_every_problem(videos_dir, tmp_path):
    folder = manifest_with(tmp_path / "m", [
        record("good", 2.0), record("long", 9.0), record("missing", 2.0), record("empty", 2.0),
        record("garbage", 2.0), record("features_only", 2.0, path=None),
    ])
    problems = validate_videos(load_manifest(folder), videos_dir)
    assert [(p.video_id, p.kind) for p in problems] == [
        ("long", "duration"), ("missing", "missing"), ("empty", "unreadable"),
        ("garbage", "unreadable")]
    assert "file lasts 2.000 s, manifest says 9.000 s" in problems[0].message
    assert str(videos_dir / "videos/empty.mp4") in problems[2].message
    assert validate_videos(load_manifest(folder), videos_dir, tolerance_s=7.5)[0].kind == "missing"
    summary = summarize(problems, 5)
    assert summary.splitlines()[-1] == (
        "4 of 5 videos have problems (duration: 1, missing: 1, unreadable: 2)")


def test_truncated_file_is_unreadable(videos_dir, tmp_path):
    folder = manifest_with(tmp_path / "m", [record("cut", 2.0)])
    problems = validate_videos(load_manifest(folder), videos_dir)
    assert [p.kind for p in problems] == ["unreadable"]


def test_cli_exit_codes(videos_dir, tmp_path):
    runner = CliRunner()
    ok = manifest_with(tmp_path / "ok", [record("good", 2.05)])
    result = runner.invoke(data, ["validate", str(ok), "--videos-root", str(videos_dir)])
    assert result.exit_code == 0 and "all 1 videos ok" in result.output
    bad = manifest_with(tmp_path / "bad", [record("good", 2.0), record("missing", 2.0),
                                           record("long", 5.0)])
    result = runner.invoke(data, ["validate", str(bad), "--videos-root", str(videos_dir)])
    assert result.exit_code == 1
    assert "missing: missing: no file" in result.output and "long: duration:" in result.output
    assert result.stdout.splitlines()[-1].startswith("2 of 3 videos have problems")
    # Without --videos-root paths are relative to the manifest folder: here nothing is there.
    result = runner.invoke(data, ["validate", str(ok)])
    assert result.exit_code == 1 and "1 of 1 videos have problems (missing: 1)" in result.output


def test_build_with_videos_root_matches_extensions_then_validates(tmp_path):
    ann = tmp_path / "charades"
    ann.mkdir()
    (ann / "Charades_v1_classes.txt").write_text("c000 Holding some clothes\n")
    header = ("id,subject,scene,quality,relevance,verified,script,objects,descriptions,"
              "actions,length\n")
    (ann / "Charades_v1_train.csv").write_text(
        header + "AAAAA,S,K,6,7,Yes,s,o,d,c000 0.50 1.50,2.00\n"
        + "BBBBB,S,K,6,7,Yes,s,o,d,,3.00\n")
    (ann / "Charades_v1_test.csv").write_text(header)
    write_mp4(tmp_path / "videos/AAAAA.mkv")  # a download with another container
    result = CliRunner().invoke(data, ["build", "charades", "--annotations", str(ann), "--out",
                                       str(tmp_path / "m"), "--videos-root",
                                       str(tmp_path / "videos")])
    assert result.exit_code == 1  # the manifest is written, then the missing video reported
    manifest = load_manifest(tmp_path / "m")
    assert [v.path for v in manifest] == ["AAAAA.mkv", "BBBBB.mp4"]
    assert any("another extension: 1" in note for note in manifest.meta.notes)
    assert "BBBBB: missing" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 of 2 videos have problems (missing: 1)"
