"""Converters against the official annotation files (exact official counts) and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_manifests.cli import data
from data_manifests.converters import CONVERTERS, breakfast
from data_manifests.converters.build import build_manifest
from data_manifests.schema import (
    Manifest,
    ManifestError,
    frame_labels,
    load_manifest,
    validate,
)
from data_manifests.stats import manifest_stats

FOLDERS = {"charades": "charades", "charades-sta": "charades_sta", "breakfast": "breakfast",
           "thumos14": "thumos14", "multithumos": "multithumos", "activitynet": "activitynet13"}


@pytest.fixture(scope="module")
def built(annotations_root):
    """``built(name)`` -> (manifest, stats, kept apart); each dataset is built once per module.

    In memory and validated like a load; writing and loading are tested on thumos14 below
    (writing the big manifests would only cost time).
    """
    cache: dict[str, tuple[Manifest, dict, list[dict]]] = {}

    def get(name: str):
        if name not in cache:
            aside: list = []
            meta, videos = CONVERTERS[name](annotations_root / FOLDERS[name], kept_apart=aside)
            validate(meta, videos, source=name)
            manifest = Manifest(meta, tuple(videos))
            kept_apart = [k.to_json() for k in aside]
            cache[name] = (manifest, manifest_stats(manifest, kept_apart), kept_apart)
        return cache[name]

    return get


def kept(items: list[dict], split: str | None, reason: str) -> int:
    return sum(1 for k in items if k["split"] == split and k["reason"] == reason)


def test_registry_names_every_dataset():
    assert set(CONVERTERS) == set(FOLDERS)


# --------------------------------------------------------------------------------------------
# Official numbers


def test_charades_official_counts(built):
    manifest, stats, aside = built("charades")
    train, test = stats["splits"]["train"], stats["splits"]["test"]
    assert stats["num_classes"] == 157
    assert (train["videos"], train["videos_with_labels"]) == (7985, 7811)
    assert (test["videos"], test["videos_with_labels"], test["segments"]) == (1863, 1814, 16691)
    # 49,809 official train instances: 5 lie entirely past their video even after swapping the
    # reversed ones, so they are kept apart; the other 49,804 are segments.
    assert train["segments"] == 49804 and kept(aside, "train", "outside_video") == 5
    assert train["source_segments"] == 49809 and test["source_segments"] == 16691
    empty = [v for v in manifest if not v.labels]
    assert len(empty) == 223 and all(v.segments == () for v in empty)
    assert all(0 <= s.start < s.end <= v.duration for v in manifest for s in v.segments)
    notes = "\n".join(manifest.meta.notes)
    assert "clipped to the video length: 19618" in notes
    assert "swapped: 7" in notes and "video without actions, kept with empty labels: 223" in notes
    # A reversed action that fits once swapped stays a segment; an unusable one stays a label.
    iol8q = manifest.by_id()["IOL8Q"]
    assert any(s.label == "c023" and (s.start, s.end) == (12.0, 21.2) for s in iol8q.segments)
    assert "c071" in manifest.by_id()["00SL4"].labels


def test_charades_sta_official_counts(built):
    manifest, stats, aside = built("charades-sta")
    train, test = stats["splits"]["train"], stats["splits"]["test"]
    assert test["sentences"] == 3720
    assert (train["source_sentences"], test["source_sentences"]) == (12408, 3720)
    assert kept(aside, "train", "outside_video") == 3
    glances = [s.glance for v in manifest if v.split == "train" for s in v.sentences]
    assert sum(g is not None for g in glances) == 12404
    assert all(s.glance is None for v in manifest if v.split == "test" for s in v.sentences)
    first = manifest.by_id()["AO8RW"]
    assert first.duration == 33.67 and first.sentences[0].text.startswith("a person is putting")
    assert (first.sentences[0].start, first.sentences[0].end, first.sentences[0].glance) == \
        (0.0, 6.9, 1.0)
    assert all(s.end <= v.duration for v in manifest for s in v.sentences)


def test_breakfast_official_counts(built, annotations_root):
    manifest, stats, _ = built("breakfast")
    assert stats["total"]["videos"] == 1712
    assert (stats["num_classes"], stats["num_activities"]) == (48, 10)
    assert (stats["splits"]["train"]["videos"], stats["splits"]["test"]["videos"]) == (1460, 252)
    test_activities = Counter(v.activity for v in manifest if v.split == "test")
    assert [test_activities[a] for a in manifest.meta.activities] == \
        [27, 22, 27, 16, 31, 22, 24, 27, 26, 30]
    # Segments round-trip to the official frame labels.
    video = manifest.by_id()["P03_cam01_P03_cereals"]
    gt = (annotations_root / "breakfast/groundTruth/P03_cam01_P03_cereals.txt").read_text()
    frames = gt.split()
    assert video.num_frames == len(frames) and video.duration == len(frames) / 15
    rebuilt = []
    for seg in video.segments:
        rebuilt += [seg.label] * round((seg.end - seg.start) * 15)
    assert rebuilt == frames
    assert video.path == "P03/cam01/P03_cereals.avi" and video.activity == "cereals"
    labels = frame_labels(video, manifest.classes)
    assert labels[0, manifest.class_index["SIL"]] and labels.shape == (len(frames), 48)


def test_breakfast_other_split(annotations_root):
    meta, videos = breakfast.build(annotations_root / "breakfast", split_index=2)
    assert Counter(v.split for v in videos) == {"train": 1261, "test": 451}
    assert "split 2 of 4" in meta.notes[0]
    with pytest.raises(ValueError, match="split_index"):
        breakfast.build(annotations_root / "breakfast", split_index=5)


def test_thumos14_official_counts(built):
    manifest, stats, aside = built("thumos14")
    val, test = stats["splits"]["val"], stats["splits"]["test"]
    assert stats["num_classes"] == 20 and "Ambiguous" not in manifest.classes
    assert (val["videos"], test["videos"]) == (200, 212)
    assert (val["source_segments"], test["source_segments"]) == (3007, 3358)
    assert (val["segments"], test["segments"]) == (3003, 3332)
    # Ambiguous intervals are kept apart: 89 val, 99 test (3 of them on video_test_0001292,
    # which no class annotates, so it is not in the manifest).
    assert kept(aside, "val", "ambiguous") == 89
    assert kept(aside, "test", "ambiguous") + kept(aside, None, "ambiguous") == 99
    assert "video_test_0001292" not in manifest.by_id()
    assert val["points"] == 3003 and test["points"] == 0
    for video in manifest:  # every point lies inside a segment of its class (fps conversion)
        for point in video.points or ():
            assert any(s.label == point.label and s.start - 0.05 <= point.time <= s.end + 0.05
                       for s in video.segments), (video.video_id, point)
    v317 = manifest.by_id()["video_validation_0000317"]
    assert (v317.duration, v317.num_frames, v317.split) == (214.25, 6425, "val")


def test_multithumos_official_counts(built):
    manifest, stats, aside = built("multithumos")
    assert (stats["total"]["videos"], stats["num_classes"]) == (413, 65)
    assert manifest.classes[:3] == ("BaseballPitch", "BasketballDunk", "Billiards")
    assert stats["total"]["source_segments"] == 38690
    assert Counter(k["reason"] for k in aside) == {"outside_video": 64, "zero_length": 7}


def test_activitynet_official_counts(built):
    manifest, stats, aside = built("activitynet")
    assert (stats["total"]["videos"], stats["num_classes"]) == (19228, 200)
    assert {s: c["videos"] for s, c in stats["splits"].items()} == \
        {"train": 9649, "val": 4728, "test": 4851}
    assert stats["total"]["videos_with_labels"] == 14377
    assert stats["total"]["source_segments"] == 22152 and len(aside) == 12
    assert all(v.segments is None for v in manifest if v.split == "test")


def test_sources_hash_every_file_read(built, annotations_root):
    manifest, _, _ = built("thumos14")
    sources = manifest.meta.sources
    assert len(sources) == 2 + 2 * 21 + 1 + 1 + 1  # lengths, per-class+Ambiguous, list, fps, points
    for name, sha in sources.items():
        data = (annotations_root / "thumos14" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha


def test_written_manifest_loads_back_with_the_same_stats(built, annotations_root, tmp_path):
    manifest, stats, _ = built("thumos14")
    out = build_manifest("thumos14", annotations_root / "thumos14", tmp_path / "m")
    loaded = load_manifest(out)
    assert loaded.videos == manifest.videos and loaded.meta == manifest.meta
    assert manifest_stats(loaded) == stats  # kept_apart.jsonl read back from the folder


def test_same_files_give_byte_identical_manifests(annotations_root, tmp_path):
    # A copy elsewhere must give the same bytes: nothing machine-specific goes in.
    copy = shutil.copytree(annotations_root / "thumos14", tmp_path / "elsewhere" / "th")
    a = build_manifest("thumos14", annotations_root / "thumos14", tmp_path / "a")
    b = build_manifest("thumos14", copy, tmp_path / "b")
    for name in ("meta.json", "videos.jsonl", "kept_apart.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_cli_build_and_stats(annotations_root, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m"
    result = runner.invoke(data, ["build", "thumos14", "--annotations",
                                  str(annotations_root / "thumos14"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(data, ["stats", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == manifest_stats(load_manifest(out))
    table = runner.invoke(data, ["stats", str(out)]).output
    assert table.splitlines()[0] == "thumos14: 20 classes, 0 activities"
    assert "ambiguous=188, outside_video=30" in table.splitlines()[-1]
    bad = runner.invoke(data, ["build", "thumos14", "--annotations", str(tmp_path / "nowhere"),
                               "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "nowhere" in bad.output


# --------------------------------------------------------------------------------------------
# Bad input: small hand-written files in the official formats

CHARADES_HEADER = ("id,subject,scene,quality,relevance,verified,script,objects,descriptions,"
                   "actions,length\n")


def charades_row(video_id: str, actions: str, length: str = "30.00") -> str:
    script = '"A script, with a comma"'
    return f"{video_id},S1,Kitchen,6,7,Yes,{script},cup,A description,{actions},{length}\n"


def write_charades(root: Path, train_rows: list[str], test_rows: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Charades_v1_classes.txt").write_text("c000 Holding some clothes\nc001 Putting cup\n")
    (root / "Charades_v1_train.csv").write_text(CHARADES_HEADER + "".join(train_rows))
    (root / "Charades_v1_test.csv").write_text(
        CHARADES_HEADER + "".join(test_rows or [charades_row("TEST1", "c001 1.00 2.00")]))
    return root


def test_charades_small_files_quirks(tmp_path):
    root = write_charades(tmp_path / "ch", [
        charades_row("AAAAA", "c000 1.00 5.00;c001 28.00 30.90"),  # ends 0.9 s past: clipped
        charades_row("BBBBB", ""),  # no actions: kept, empty labels
    ])
    meta, videos = CONVERTERS["charades"](root)
    by_id = {v.video_id: v for v in videos}
    assert by_id["AAAAA"].labels == ("c000", "c001")
    assert by_id["AAAAA"].segments[1].end == 30.0
    assert by_id["BBBBB"].labels == () and by_id["BBBBB"].segments == ()
    assert [v.split for v in videos] == ["train", "train", "test"]
    assert any("clipped to the video length: 1" in n for n in meta.notes)
    assert any("empty labels: 1" in n for n in meta.notes)


@pytest.mark.parametrize("row, line, needle", [
    ("AAAAA,S1,Kitchen,6\n", 3, "expected 11 columns"),
    (charades_row("AAAAA", "c999 1.00 2.00"), 3, "unknown class 'c999'"),
    (charades_row("AAAAA", "c000 5.00 2.00"), 3, "end <= start in 'c000 5.00 2.00'"),
    (charades_row("AAAAA", "c000 31.00 40.00"), 3, "[31.0, 40.0] lies outside the video"),
    (charades_row("AAAAA", "c000 x 2.00"), 3, "not a number: 'x'"),
    (charades_row("OK001", "c000 1.00 2.00"), 3, "duplicated id 'OK001' (first at"),
])
def test_charades_bad_rows(tmp_path, row, line, needle):
    root = write_charades(tmp_path / "ch", [charades_row("OK001", "c000 1.00 2.00"), row])
    with pytest.raises(ManifestError) as err:
        CONVERTERS["charades"](root)
    assert f"Charades_v1_train.csv:{line}" in str(err.value)
    assert needle in str(err.value)


def write_thumos(root: Path) -> Path:
    """Two classes, one val and one test video, an Ambiguous interval, points."""
    for sub in ("official/annotation_val", "official/annotation_test", "durations", "wtal",
                "points"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "official/detclasslist.txt").write_text("7 BaseballPitch\n9 BasketballDunk\n")
    val, test = root / "official/annotation_val", root / "official/annotation_test"
    (val / "BaseballPitch_val.txt").write_text("video_validation_0000001 1.0 3.0\n")
    (val / "BasketballDunk_val.txt").write_text("video_validation_0000001 5.0 6.0\n")
    (val / "Ambiguous_val.txt").write_text("video_validation_0000001  7.0 8.0\n")
    (test / "BaseballPitch_test.txt").write_text("video_test_0000001 2.0 4.0\n")
    (test / "BasketballDunk_test.txt").write_text("")
    (test / "Ambiguous_test.txt").write_text("")
    (root / "durations/thumos14_video_length_val.txt").write_text(
        "video_validation_0000001 10.00 300\n")
    (root / "durations/thumos14_video_length_test.txt").write_text(
        "video_test_0000001 20.00 500\n")
    (root / "wtal/fps_dict.json").write_text(
        json.dumps({"video_validation_0000001": 30.0, "video_test_0000001": 25.0}))
    (root / "points/point_labels.csv").write_text(
        "class,class_index,start_frame,stop_frame,video_id,point\n"
        "BaseballPitch,0,30,90,video_validation_0000001,60\n"
        "BasketballDunk,1,150,180,video_validation_0000001,165\n")
    return root


def test_thumos_small_files(tmp_path):
    root = write_thumos(tmp_path / "th")
    kept_apart: list = []
    meta, videos = CONVERTERS["thumos14"](root, kept_apart=kept_apart)
    val, test = videos
    assert (val.split, test.split) == ("val", "test") and meta.classes == (
        "BaseballPitch", "BasketballDunk")
    assert [(p.label, p.time) for p in val.points] == [("BaseballPitch", 2.0),
                                                      ("BasketballDunk", 5.5)]
    assert test.points is None and (test.fps, test.num_frames) == (25.0, 500)
    assert [(k.reason, k.start, k.end, k.source) for k in kept_apart] == [
        ("ambiguous", 7.0, 8.0, "official/annotation_val/Ambiguous_val.txt:1")]


def test_thumos_row_repeated_in_a_class_file_is_one_instance_and_noted(tmp_path):
    root = write_thumos(tmp_path / "th")
    (root / "official/annotation_val/BaseballPitch_val.txt").write_text(
        "video_validation_0000001 1.0 3.0\nvideo_validation_0000001 1.0 3.0\n")
    kept_apart: list = []
    _, videos = CONVERTERS["thumos14"](root, kept_apart=kept_apart)
    assert [(s.label, s.start, s.end) for s in videos[0].segments] == [
        ("BaseballPitch", 1.0, 3.0), ("BasketballDunk", 5.0, 6.0)]
    assert [(k.reason, k.source) for k in kept_apart if k.reason == "duplicate"] == [
        ("duplicate", "official/annotation_val/BaseballPitch_val.txt:2")]


@pytest.mark.parametrize("file, text, where, needle", [
    ("official/annotation_val/BaseballPitch_val.txt",
     "video_validation_0000001 1.0 3.0\nvideo_validation_0000001 4.0\n",
     "BaseballPitch_val.txt:2", "expected 'video start end'"),
    ("official/annotation_val/BaseballPitch_val.txt", "video_validation_0000001 3.0 3.0\n",
     "BaseballPitch_val.txt:1", "end <= start: [3.0, 3.0]"),
    ("official/annotation_val/BaseballPitch_val.txt", "video_validation_0000001 11.0 12.0\n",
     "BaseballPitch_val.txt:1", "[11.0, 12.0] lies outside the video [0, 10.0]"),
    ("official/annotation_val/BaseballPitch_val.txt", "video_validation_0000009 1.0 2.0\n",
     "BaseballPitch_val.txt:1", "'video_validation_0000009' has no length"),
    ("durations/thumos14_video_length_val.txt",
     "video_validation_0000001 10.00 300\nvideo_validation_0000001 10.00 300\n",
     "thumos14_video_length_val.txt:2", "duplicated video 'video_validation_0000001'"),
    ("points/point_labels.csv",
     ("class,class_index,start_frame,stop_frame,video_id,point\n"
      "Bowling,0,30,90,video_validation_0000001,60\n"),
     "point_labels.csv:2", "unknown class 'Bowling'"),
    ("points/point_labels.csv",
     ("class,class_index,start_frame,stop_frame,video_id,point\n"
      "BaseballPitch,0,30,90,video_validation_0000001,900\n"),
     "point_labels.csv:2", "time 30.000 s (BaseballPitch) outside the video"),
])
def test_thumos_bad_rows(tmp_path, file, text, where, needle):
    root = write_thumos(tmp_path / "th")
    (root / file).write_text(text)
    with pytest.raises(ManifestError) as err:
        CONVERTERS["thumos14"](root)
    assert where in str(err.value) and needle in str(err.value)


def test_thumos_unknown_class_files(tmp_path):
    root = write_thumos(tmp_path / "th")
    (root / "official/annotation_test/Bowling_test.txt").write_text("video_test_0000001 1 2\n")
    with pytest.raises(ManifestError, match=r"Bowling_test.txt \[class\]: unknown class 'Bowling'"):
        CONVERTERS["thumos14"](root)
    (root / "official/annotation_test/Bowling_test.txt").unlink()
    (root / "official/detclasslist.txt").write_text(
        "7 BaseballPitch\n9 BasketballDunk\n10 Bowling\n")
    with pytest.raises(ManifestError, match="'Bowling_val.txt' not found"):
        CONVERTERS["thumos14"](root)


def write_breakfast(root: Path) -> Path:
    (root / "splits").mkdir(parents=True)
    (root / "groundTruth").mkdir()
    (root / "mapping.txt").write_text("0 SIL\n1 pour_milk\n2 take_bowl\n")
    (root / "groundTruth/P03_cam01_P03_cereals.txt").write_text(
        "SIL\nSIL\ntake_bowl\ntake_bowl\ntake_bowl\npour_milk\nSIL\n")
    (root / "groundTruth/P04_webcam02_P04_milk.txt").write_text("SIL\npour_milk\n")
    for i in range(1, 5):
        (root / f"splits/train.split{i}.bundle").write_text("P03_cam01_P03_cereals.txt\n")
        (root / f"splits/test.split{i}.bundle").write_text("P04_webcam02_P04_milk.txt\n")
    return root


def test_breakfast_small_files(tmp_path):
    meta, videos = CONVERTERS["breakfast"](write_breakfast(tmp_path / "bf"))
    train, test = videos
    assert [(s.label, s.start * 15, s.end * 15) for s in train.segments] == [
        ("SIL", 0, 2), ("take_bowl", 2, 5), ("pour_milk", 5, 6), ("SIL", 6, 7)]
    assert (train.num_frames, train.duration, train.activity) == (7, 7 / 15, "cereals")
    assert test.path == "P04/webcam02/P04_milk.avi" and meta.activities == ("cereals", "milk")


@pytest.mark.parametrize("file, text, where, needle", [
    ("groundTruth/P04_webcam02_P04_milk.txt", "SIL\npour_juice\n",
     "P04_webcam02_P04_milk.txt:2", "unknown action 'pour_juice'"),
    ("splits/train.split1.bundle", "P03_cam01_P03_cereals.txt\nP03_cam01_P03_cereals.txt\n",
     "train.split1.bundle:2", "duplicated video 'P03_cam01_P03_cereals.txt'"),
    ("splits/test.split1.bundle", "P04_webcam02_P04_milk.txt\nP05_cam01_P05_tea.txt\n",
     "test.split1.bundle:2", "'P05_cam01_P05_tea.txt' not found"),
    ("splits/test.split1.bundle", "P03_cam01_P03_cereals.txt\n",
     "test.split1.bundle:1", "duplicated video 'P03_cam01_P03_cereals.txt'"),
])
def test_breakfast_bad_files(tmp_path, file, text, where, needle):
    root = write_breakfast(tmp_path / "bf")
    (root / file).write_text(text)
    with pytest.raises(ManifestError) as err:
        CONVERTERS["breakfast"](root)
    assert where in str(err.value) and needle in str(err.value)


def write_multithumos(root: Path, walk: str) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "class_list_DERIVED.txt").write_text("1 Walk\n2 Run\n")
    (root / "annotations/Walk.txt").write_text(walk)
    (root / "annotations/Run.txt").write_text("video_test_0000001 1.00 2.00\n")
    (root / "multithumos_superevents.json").write_text(json.dumps({
        "video_test_0000001": {"subset": "testing", "duration": 10.0, "actions": []}}))
    return root


@pytest.mark.parametrize("walk, needle", [
    ("video_test_0000001 4.00 4.00\n", "Walk.txt:1 [end]: video_test_0000001: end <= start"),
    ("video_test_0000001 4.00\n", "Walk.txt:1: expected 'video start end'"),
    ("video_test_0000001 11.00 12.00\n", "Walk.txt:1 [end]: video_test_0000001: [11.0, 12.0]"),
    ("video_test_0000002 1.00 2.00\n", "Walk.txt:1 [video]: video 'video_test_0000002' not in"),
])
def test_multithumos_bad_rows(tmp_path, walk, needle):
    with pytest.raises(ManifestError, match=None) as err:
        CONVERTERS["multithumos"](write_multithumos(tmp_path / "mt", walk))
    assert needle in str(err.value)


def write_activitynet(root: Path, info_rows: str, annotations: dict) -> Path:
    root.mkdir(parents=True)
    (root / "action_name.csv").write_text("action\nApplying sunscreen\nArm wrestling\n")
    (root / "video_info_new.csv").write_text(
        "video,numFrame,seconds,fps,rfps,subset,featureFrame\n" + info_rows)
    (root / "anet_anno_action.json").write_text(json.dumps(annotations))
    return root


ANET_ROW = "v_aaa,300,10.0,30.0,30.0,training,288\n"


@pytest.mark.parametrize("rows, annotations, needle", [
    (ANET_ROW + ANET_ROW, {}, "video_info_new.csv:3 [video]: duplicated video 'v_aaa'"),
    ("v_aaa,300,ten,30.0,30.0,training,288\n", {}, "video_info_new.csv:2 [seconds]: not a number"),
    (ANET_ROW, {"v_aaa": {"annotations": [{"segment": [1, 2], "label": "Bowling"}]}},
     "anet_anno_action.json:v_aaa.annotations[0] [label]: unknown class 'Bowling'"),
    (ANET_ROW, {"v_aaa": {"annotations": [{"segment": [2, 2], "label": "Arm wrestling"}]}},
     "v_aaa.annotations[0] [segment]: end <= start: [2.0, 2.0]"),
    (ANET_ROW, {"v_aaa": {"annotations": [{"segment": [12, 14], "label": "Arm wrestling"}]}},
     "v_aaa.annotations[0] [end]: v_aaa: [12.0, 14.0] lies outside the video"),
])
def test_activitynet_bad_input(tmp_path, rows, annotations, needle):
    with pytest.raises(ManifestError) as err:
        CONVERTERS["activitynet"](write_activitynet(tmp_path / "an", rows, annotations))
    assert needle in str(err.value)


def test_charades_sta_small_files(tmp_path):
    root = tmp_path / "sta"
    root.mkdir()
    write_charades(tmp_path / "charades", [charades_row("AAAAA", "c000 1.00 5.00", "20.00")])
    (root / "charades_sta_train.txt").write_text(
        "AAAAA 0.0 6.9##a person holds clothes.\nAAAAA 15.0 20.8##a person puts a cup.\n")
    (root / "charades_sta_test.txt").write_text("TEST1 1.0 2.0##a person puts a cup.\n")
    meta, videos = CONVERTERS["charades-sta"](root)  # durations from the sibling charades/
    train = {v.video_id: v for v in videos}["AAAAA"]
    assert train.duration == 20.0 and [(s.start, s.end) for s in train.sentences] == \
        [(0.0, 6.9), (15.0, 20.0)]
    assert "../charades/Charades_v1_train.csv" in meta.sources
    (root / "charades_sta_test.txt").write_text("TEST1 2.0 1.0##a person puts a cup.\n")
    with pytest.raises(ManifestError, match=r"charades_sta_test.txt:1 \[end\]: TEST1: end <= "):
        CONVERTERS["charades-sta"](root)
    (root / "charades_sta_test.txt").write_text("TEST1 1.0 2.0 a person puts a cup.\n")
    with pytest.raises(ManifestError, match=r"charades_sta_test.txt:1: expected"):
        CONVERTERS["charades-sta"](root)
    shutil.rmtree(tmp_path / "charades")  # no lengths: duration = last sentence end
    (root / "charades_sta_test.txt").write_text("TEST1 1.0 2.0##a person puts a cup.\n")
    meta, videos = CONVERTERS["charades-sta"](root)
    assert {v.video_id: v.duration for v in videos} == {"TEST1": 2.0, "AAAAA": 20.8}
    assert any("Charades CSVs not found" in n for n in meta.notes)


def test_duplicated_json_keys_are_errors(tmp_path):
    # json.loads would keep the last entry silently.
    root = write_multithumos(tmp_path / "mt", "video_test_0000001 1.00 2.00\n")
    entry = '{"subset": "testing", "duration": 10.0, "actions": []}'
    (root / "multithumos_superevents.json").write_text(
        f'{{"video_test_0000001": {entry},\n"video_test_0000001": {entry}}}')
    with pytest.raises(ManifestError, match=r"multithumos_superevents.json \[video_test_0000001\]"
                                            r": duplicated key 'video_test_0000001'"):
        CONVERTERS["multithumos"](root)



def test_build_refuses_to_overwrite_another_datasets_manifest(tmp_path):
    from click.testing import CliRunner

    from data_manifests.cli import data

    out = tmp_path / "manifest"
    out.mkdir()
    (out / "meta.json").write_text('{"dataset": "charades", "classes": []}\n')
    annotations = tmp_path / "ann"
    annotations.mkdir()
    result = CliRunner().invoke(data, ["build", "thumos14", "--annotations", str(annotations),
                                       "--out", str(out)])
    assert result.exit_code == 1 and "holds a manifest of charades" in result.output
    assert "Traceback" not in result.output
    assert (out / "meta.json").read_text().startswith('{"dataset": "charades"')
