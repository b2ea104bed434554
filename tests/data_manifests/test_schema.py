"""The manifest schema: round trip, byte-identical writes, errors that name file:line and field."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from data_manifests.schema import (
    Manifest,
    ManifestError,
    ManifestMeta,
    Point,
    Segment,
    Sentence,
    VideoRecord,
    frame_labels,
    labels_at_times,
    load_manifest,
    write_manifest,
)

META = ManifestMeta(dataset="toy", classes=("jump", "run", "sit"), activities=("sport",),
                    fps=10.0, sources={"a.txt": "0" * 64}, notes=("a note",))


def video(video_id: str = "v1", **changes) -> VideoRecord:
    base = VideoRecord(
        video_id=video_id, path=f"{video_id}.mp4", split="train", duration=10.0, fps=10.0,
        num_frames=100, labels=("jump", "run"),
        segments=(Segment("jump", 1.0, 2.0), Segment("run", 4.5, 10.0)),
        points=(Point("jump", 1.5),), activity="sport",
        sentences=(Sentence("a person jumps", 1.0, 2.0, 1.2),))
    return replace(base, **changes)


def test_round_trip_keeps_every_field(tmp_path):
    videos = (video("v1"), video("v2", split="test", segments=(), points=None, sentences=None,
                                 labels=(), activity=None, path=None))
    out = write_manifest((META, videos), tmp_path / "m")
    loaded = load_manifest(out)
    assert loaded.meta == META and loaded.videos == videos and loaded.root == out
    # None (not annotated) and () (annotated, none here) stay different.
    assert loaded.videos[1].segments == () and loaded.videos[1].points is None
    assert load_manifest(out / "videos.jsonl").videos == videos


def test_writes_are_byte_identical_and_hash_is_content_only(tmp_path):
    manifest = Manifest(META, (video("v1"), video("v2")))
    a = write_manifest(manifest, tmp_path / "a")
    b = write_manifest(manifest, tmp_path / "b")
    for name in ("meta.json", "videos.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert load_manifest(a).sha256() == load_manifest(b).sha256() == manifest.sha256()
    assert Manifest(META, (video("v1"),)).sha256() != manifest.sha256()
    first = json.loads((a / "videos.jsonl").read_text().splitlines()[0])
    assert first["video_id"] == "v1" and first["segments"][1] == {
        "label": "run", "start": 4.5, "end": 10.0}


@pytest.mark.parametrize("bad, field, needle", [
    (video("v1"), "video_id", "duplicated id (first on line 1)"),
    (video("v2", duration=0.0), "duration", "positive number of seconds, got 0.0"),
    (video("v2", duration=float("nan")), "duration", "got nan"),
    (video("v2", fps=-1.0), "fps", "must be positive, got -1.0"),
    (video("v2", num_frames=-3), "num_frames", "must be >= 0, got -3"),
    (video("v2", labels=("fly",), segments=()), "labels", "unknown class 'fly'"),
    (video("v2", labels=("run", "run"), segments=()), "labels", "duplicated labels"),
    (video("v2", segments=(Segment("fly", 1, 2),)), "segments", "unknown class 'fly'"),
    (video("v2", segments=(Segment("run", 3, 3),)), "segments", "end <= start: [3, 3]"),
    (video("v2", segments=(Segment("run", 3, 12),)), "segments", "lies outside the video"),
    (video("v2", segments=(Segment("sit", 3, 4),)), "segments",
     "segment class 'sit' missing from the video labels"),
    (video("v2", points=(Point("fly", 1),)), "points", "unknown class 'fly'"),
    (video("v2", points=(Point("run", 11),)), "points", "time 11 (run) outside [0, 10.0]"),
    (video("v2", activity="cooking"), "activity", "unknown activity 'cooking'"),
    (video("v2", sentences=(Sentence("x", 2, 1),)), "sentences", "end <= start: [2, 1] 'x'"),
    (video("v2", sentences=(Sentence("x", 1, 2, 3),)), "sentences", "glance 3 outside [1, 2]"),
    (video("v2", sentences=(Sentence("x", None, 2),)), "sentences", "only one of start and end"),
    (video("v2", sentences=(Sentence("x", "1", 2),)), "sentences", "start '1' of 'x' is not"),
    (video("v2", sentences=(Sentence("x", None, None, 12),)), "sentences",
     "glance 12 outside [0.0, 10.0]"),
])
def test_every_validation_error_names_file_line_field(tmp_path, bad, field, needle):
    # Written by hand (write_manifest would refuse): line 2 is the bad record.
    folder = tmp_path / "m"
    write_manifest((META, (video("v1"),)), folder)
    with (folder / "videos.jsonl").open("a") as fh:
        fh.write(json.dumps(bad.to_json()) + "\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(folder)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(folder / "videos.jsonl"), 2, field)
    assert str(err.value).startswith(f"{folder / 'videos.jsonl'}:2 [{field}]: video ")
    assert needle in str(err.value)
    with pytest.raises(ManifestError):  # the writer refuses the same record
        write_manifest((META, (video("v1"), bad)), tmp_path / "w")


def test_unreadable_lines_and_files_name_the_place(tmp_path):
    folder = write_manifest((META, (video("v1"),)), tmp_path / "m")
    with (folder / "videos.jsonl").open("a") as fh:
        fh.write("\n{not json\n")
    with pytest.raises(ManifestError, match=r"videos.jsonl:3: not JSON"):
        load_manifest(folder)
    (folder / "videos.jsonl").write_text('{"video_id": "v1"}\n')
    with pytest.raises(ManifestError, match=r"videos.jsonl:1: bad record: KeyError\('split'\)"):
        load_manifest(folder)
    (folder / "meta.json").write_text(json.dumps({"dataset": "toy", "classes": [],
                                                  "schema_version": 99}))
    with pytest.raises(ManifestError, match=r"meta.json \[schema_version\]: 99 is newer"):
        load_manifest(folder)
    (folder / "meta.json").unlink()
    with pytest.raises(ManifestError, match=r"meta.json: missing"):
        load_manifest(folder)
    duplicated = replace(META, classes=("run", "run"))
    with pytest.raises(ManifestError, match=r"\[classes\]: duplicated class names \['run'\]"):
        write_manifest((duplicated, ()), tmp_path / "d")


def test_a_sentence_without_its_moment_is_valid(tmp_path):
    """Weak grounding data (CPL) has sentences without boundaries: null start and end."""
    record = video("v2", sentences=(Sentence("x", None, None), Sentence("y", None, None, 4.0)))
    write_manifest((META, (video("v1"), record)), tmp_path / "m")
    loaded = load_manifest(tmp_path / "m").by_id()["v2"].sentences
    assert [(s.start, s.end, s.glance) for s in loaded] == [(None, None, None),
                                                            (None, None, 4.0)]


def test_split_and_video_path(tmp_path):
    manifest = load_manifest(write_manifest((META, (video("v1"), video("v2", split="test"))),
                                            tmp_path / "m"))
    assert [v.video_id for v in manifest.split("test")] == ["v2"]
    assert manifest.split(None) is manifest
    with pytest.raises(ManifestError, match=r"no video in split 'val'; splits present"):
        manifest.split("val")
    assert manifest.video_path(manifest.videos[0]) == (tmp_path / "m" / "v1.mp4").resolve()
    assert manifest.video_path(manifest.videos[0], tmp_path) == (tmp_path / "v1.mp4").resolve()


def test_frame_labels_from_segments():
    labels = frame_labels(video("v1"), META.classes, fps=1.0)  # frames at 0, 1, ..., 9 s
    assert labels.shape == (10, 3)
    assert np.flatnonzero(labels[:, 0]).tolist() == [1]  # jump [1, 2): half-open, end excluded
    assert np.flatnonzero(labels[:, 1]).tolist() == [5, 6, 7, 8, 9]
    assert not labels[:, 2].any()
    with pytest.raises(ManifestError, match="no interval annotations"):
        frame_labels(video("v1", segments=None), META.classes)


def test_frame_on_a_boundary_between_two_segments_gets_only_the_second():
    back_to_back = video("v1", segments=(Segment("jump", 0.0, 2.0), Segment("run", 2.0, 4.0)))
    labels = labels_at_times(back_to_back, META.classes, np.array([1.0, 2.0, 3.0]))
    assert labels.sum(axis=1).tolist() == [1, 1, 1]
    assert labels[1].tolist() == [False, True, False]
