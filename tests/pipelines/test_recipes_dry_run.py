"""Real-dataset recipes planned by `--dry-run` against the official annotation files; recipe
parameters; figures gathered into the pipeline output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_manifests.schema import load_manifest
from extract.clip_grid import clip_count
from pipelines import runner
from pipelines.cli import pipelines, write_outputs
from pipelines.dry_run import plan_recipe
from pipelines.figures import gather_figures
from pipelines.recipe import RecipeError, load_recipe, require_params
from tests.pipelines.test_runner import write_recipe

REAL = ("charades", "breakfast", "multithumos", "thumos14")


@pytest.fixture(scope="module")
def plans(annotations_root, tmp_path_factory):
    """The dry run of every real-dataset recipe (each builds its manifest: a few seconds)."""
    out = {}
    for name in REAL:
        root = tmp_path_factory.mktemp(f"dry-{name}")
        params = {"annotations": str(annotations_root / name)}
        if name == "charades":  # its grounding steps read Charades-STA as well
            params["sta_annotations_dir"] = str(annotations_root / "charades_sta")
        recipe = load_recipe(name, root, params)
        out[name] = plan_recipe(recipe, root)
    return out


@pytest.mark.parametrize("name", REAL)
def test_dry_run_builds_the_manifest_and_counts_its_splits(plans, name):
    data = plans[name].step("data")
    assert not data.problems and data.facts["manifest"].startswith(str(plans[name].root))
    manifest = load_manifest(data.facts["manifest"])
    assert data.facts["splits"] == dict(Counter(v.split for v in manifest.videos))
    assert sum(data.facts["splits"].values()) == len(manifest.videos) > 0


def test_training_plans_follow_the_papers_counts_and_settings(plans):
    charades = plans["charades"].step("train-i3d-adaptfocus-s0").facts
    # Paper 4.2: 1,814 labelled Charades test videos, 10x3 views; Inception-I3D 32x3.
    assert charades["eval_videos"] == 1814 and charades["views"] == (10, 3)
    assert charades["backbone"] == "i3d-inception" and charades["clip"] == (32, 3)
    assert charades["mode"] == "adaptfocus" and charades["train_videos"] == 7985
    # The loop's rule: whole batches of one process (7985 // 16 = 499 per epoch).
    assert charades["iterations"] == 200 * (7985 // 16)
    assert plans["charades"].step("train-i3d-adaptfocus-s0").train_clips == 200 * 499 * 16
    assert plans["charades"].step("train-i3d-adaptfocus-s0").eval_clips == 1814 * 30
    multi = plans["multithumos"].step("train-mvit32-full-s0").facts
    # Paper 4.2: MultiTHUMOS has 200 training and 213 test videos; 30x1 views.
    assert (multi["train_videos"], multi["eval_videos"], multi["views"]) == (200, 213, (30, 1))
    assert plans["charades"].step("train-mvit16-noisy-s0").facts["clip"] == (16, 4)


def test_export_clip_estimate_matches_a_hand_count(plans):
    export = plans["charades"].step("export-i3d-kinc")
    manifest = load_manifest(export.facts["manifest"])
    first = manifest.by_id()["001YG"]
    assert first.num_frames == 734
    # 32x3 spans 94 frames; starts 0, 16, ..., 640 (640 + 94 = 734 ends the video): 41 clips.
    assert clip_count(734, 32, 3, 16) == 41
    assert export.facts["videos"] == len(manifest.videos) == export.exported_videos
    assert export.export_clips == sum(clip_count(v.num_frames, 32, 3, 16)
                                      for v in manifest.videos) > 41


@pytest.mark.parametrize("name", REAL)
def test_real_recipes_plan_without_problems(plans, name):
    plan = plans[name]
    assert plan.ok, plan.problems
    assert all(p.train_clips > 0 for p in plan.steps if p.step.id.startswith("train-"))
    assert all(p.export_clips > 0 for p in plan.steps if p.step.id.startswith("export-"))
    assert "{videos}" not in " ".join(c for p in plan.steps for c in p.commands)


def test_recipes_pick_the_mode_of_one_config_per_backbone(plans):
    # One config per (backbone, dataset); the recipe's --set train.mode=... chooses the mode.
    for step_id, mode in (("train-i3d-full-s0", "full"), ("train-i3d-noisy-s0", "noisy"),
                          ("train-mvit32-adaptfocus-s0", "adaptfocus")):
        step = plans["thumos14"].step(step_id)
        assert step.facts["mode"] == mode and f"train.mode={mode}" in step.commands[0]
    configs = {c.split("--config ")[1].split()[0].rsplit("/", 1)[1]
               for plan in plans.values() for p in plan.steps
               for c in p.commands if "--config " in c}
    assert len(configs) == 9 and all(c.count("_") == 1 for c in configs)


def test_breakfast_stage2_plans_car_and_seg_on_split_1_with_a_held_out_selection_part(plans):
    plan = plans["breakfast"]
    stage2 = [p for p in plan.steps if p.step.id.startswith(("car-", "seg-"))]
    # car: 3 methods x 2 extractors x 3 stores; seg: (MS-TCN, LTContext) x 3 stores, POC x 3
    # stores x 3 seeds, all on the Inception-I3D stores (Table 5's extractor).
    assert len(stage2) == 18 + 6 + 9 and not any(p.problems for p in stage2)
    manifest = plan.step("data").facts["manifest"]
    for p in stage2:
        facts = p.facts
        assert (facts["task"], facts["method"]) == tuple(p.step.id.split("-")[:2])
        # Split 1: 1,460 train videos, 292 (data.val_fraction 0.2) held out to select on.
        assert (facts["train_split"], facts["train_videos"], facts["val_videos"]) == (
            "train", 1168, 292)
        assert all(f"--manifest {manifest}" in c for c in p.commands[:2])
        assert "predict: 252 videos (split test)" in p.details
    assert {p.step.id for p in stage2 if p.step.id.startswith("seg-poc-i3d-weak")} == {
        "seg-poc-i3d-weak-s0", "seg-poc-i3d-weak-s1", "seg-poc-i3d-weak-s2"}
    # Car and seg train on what the activities and segments of the manifest give them.
    videos = load_manifest(manifest).videos
    assert all(v.activity and v.segments and "SIL" in v.labels for v in videos)


def test_charades_grounding_plans_on_charades_sta_whose_videos_the_stores_hold(plans):
    plan = plans["charades"]
    sta = plan.step("data-sta")
    assert not sta.problems and sta.facts["splits"] == {"train": 5338, "test": 1334}
    grounding = load_manifest(sta.facts["manifest"])
    # 12,408 train sentences (3 lie outside their video: kept apart), 3,720 test sentences.
    assert sum(len(v.sentences) for v in grounding.videos if v.split == "train") == 12405
    assert sum(len(v.sentences) for v in grounding.videos if v.split == "test") == 3720
    # The stores are exported over the Charades manifest: every grounding video is in them.
    charades = {v.video_id for v in load_manifest(plan.step("data").facts["manifest"]).videos}
    assert {v.video_id for v in grounding.videos} <= charades
    tsg = [p for p in plan.steps if p.step.id.startswith("tsg-")]
    assert len(tsg) == 3 * 2 * 3 and not any(p.problems for p in tsg)
    for p in tsg:
        assert p.facts["task"] == "tsg" and p.facts["method"] in ("cpl", "d3g", "mmn")
        assert (p.facts["train_videos"], p.facts["val_videos"]) == (4270, 1068)
        assert f"--manifest {sta.facts['manifest']}" in p.commands[0]
        assert p.commands[2].endswith(f"--nms 1 --out {p.step.folder(plan.root)}/results.json")
        assert "predict: 1,334 videos (split test)" in p.details


def test_thumos14_localization_trains_on_val_and_selects_on_a_held_out_part(plans):
    # THUMOS'14 trains on its validation videos (split "val"); the tal-* steps say so with
    # data.train_split=val, and select checkpoints on a held-out part of them.
    plan = plans["thumos14"]
    tal = [p for p in plan.steps if p.step.id.startswith("tal-")]
    assert len(tal) == 24 and not any(p.problems for p in tal)
    assert all("data.train_split=val" in p.commands[0] for p in tal)
    for p in tal:
        facts = p.facts
        assert facts["train_split"] == "val"
        # 200 validation videos: 160 to train on, 40 (data.val_fraction 0.2) to select on.
        assert (facts["train_videos"], facts["val_videos"]) == (160, 40)
    assert plan.step("export-i3d-weak").export_clips > 0


def test_videos_root_check_counts_present_and_missing_files(annotations_root, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("video_validation_0000051.mp4", "video_test_0000004.mp4"):
        (videos / name).write_bytes(b"")
    root = tmp_path / "out"
    recipe = load_recipe("multithumos", root, {"annotations": str(annotations_root / "multithumos"),
                                               "videos": str(videos)})
    plan = plan_recipe(recipe, root)
    data = plan.step("data")
    assert (data.facts["videos_present"], data.facts["videos_missing"]) == (2, 411)
    assert any("411 video file(s) missing" in p for p in data.problems) and not plan.ok
    train = plan.step("train-i3d-full-s0")
    assert train.facts["videos_present"] == 2  # one training (val) and one test video
    assert f"data.videos_root={videos}" in train.commands[0]


def test_cli_dry_run_prints_the_plan_and_exits_non_zero_on_problems(annotations_root, tmp_path):
    result = CliRunner().invoke(pipelines, [
        "run", "multithumos", "--dry-run", "--out", str(tmp_path / "out"),
        "--param", f"annotations={annotations_root / 'multithumos'}",
        "--param", f"videos={tmp_path}"])
    assert result.exit_code == 1, result.output
    assert "[1/13] data" in result.output and "0 of 413 present" in result.output
    assert "Clips to decode (estimate)" in result.output


PARAMS = """
    name: toy
    params: {videos: null, level: 3}
    steps:
      - id: a
        command: [emit, "{out}", "{videos}", "{level}"]
      - id: b
        command: [emit, "{out}"]
"""


def test_params_override_defaults_and_enter_the_keys(tmp_path):
    path = write_recipe(tmp_path, PARAMS)
    root = tmp_path / "out"
    one = load_recipe(path, root, {"videos": "/data/one"})
    two = load_recipe(path, root, {"videos": "/data/two", "level": "3"})
    assert one.step("a").commands[0][2:] == ("/data/one", "3")
    assert one.step("a").key != two.step("a").key and one.step("b").key == two.step("b").key
    relative = load_recipe(path, root, {"videos": "rel/videos"})
    assert relative.step("a").commands[0][2] == str(Path("rel/videos").resolve())
    # A path under the output folder is keyed relative to it (like the steps' folders).
    inside = [load_recipe(path, r, {"videos": str(r / "videos")}).step("a").key
              for r in (tmp_path / "x", tmp_path / "y")]
    assert inside[0] == inside[1]


def test_unknown_param_is_an_error_naming_the_recipe(tmp_path):
    with pytest.raises(RecipeError, match=r"recipe toy .*unknown param\(s\) \['vidoes'\]; "
                                          r"known: level, videos"):
        load_recipe(write_recipe(tmp_path, PARAMS), tmp_path / "out", {"vidoes": "/x"})


def test_a_param_without_value_can_be_planned_but_not_run(tmp_path):
    path = write_recipe(tmp_path, PARAMS)
    recipe = load_recipe(path, tmp_path / "out")
    assert recipe.step("a").unset == ("videos",) and recipe.step("b").unset == ()
    assert "{videos}" in recipe.step("a").commands[0]
    with pytest.raises(RecipeError, match=r"--param videos=\.\.\. \(used by a\)"):
        require_params(recipe)
    result = CliRunner().invoke(pipelines, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "needs a value for: --param videos" in result.output
    bad = CliRunner().invoke(pipelines, ["run", str(path), "--param", "colour=red"])
    assert bad.exit_code != 0 and "unknown param(s) ['colour']" in bad.output
    with pytest.raises(RecipeError, match=r"no such file or folder: --param videos=/nonexistent"):
        require_params(load_recipe(path, tmp_path / "out", {"videos": "/nonexistent"}))
    require_params(load_recipe(path, tmp_path / "out", {"videos": str(tmp_path)}))


def test_dry_run_names_bad_options_and_config_keys(annotations_root, tmp_path):
    text = f"""
        steps:
          - id: data
            command: [data, build, thumos14, --annotations, "{annotations_root / 'thumos14'}",
                      --out, "{{out}}"]
          - id: train
            needs: [data]
            command: [extract, train,
                      --config, "{{extract_configs}}/i3d-inception_thumos14.yaml",
                      --set, "data.manifest={{data}}", --set, "train.nope=1", --out, "{{out}}"]
          - id: export
            needs: [data]
            command: [extract, features, --backbone, i3d-inception, --manifest, "{{data}}",
                      --store, "{{out}}/f.zarr", --clip, 32x3, --colour, red]
    """
    root = tmp_path / "out"
    plan = plan_recipe(load_recipe(write_recipe(tmp_path, text), root), root)
    assert not plan.step("data").problems
    assert any("train: " in p and "nope" in p for p in plan.problems)
    assert any(p.startswith("export: ") and "--colour" in p for p in plan.problems)


def test_a_failed_data_build_blocks_its_dependants(tmp_path):
    text = """
        steps:
          - id: data
            command: [data, build, thumos14, --annotations, "{recipe_dir}/nowhere", --out, "{out}"]
          - id: export
            needs: [data]
            command: [extract, features, --backbone, x3d-tiny, --manifest, "{data}",
                      --store, "{out}/f.zarr"]
    """
    root = tmp_path / "out"
    plan = plan_recipe(load_recipe(write_recipe(tmp_path, text), root), root)
    assert plan.step("data").failed
    assert plan.step("data").problems == [f"annotation folder {tmp_path}/nowhere not found"]
    assert plan.step("export").blocked_by == ("data",) and not plan.ok


def test_data_only_dry_run_does_not_import_torch(annotations_root, tmp_path):
    path = write_recipe(tmp_path, f"""
        steps:
          - id: data
            command: [data, build, thumos14, --annotations, "{annotations_root / 'thumos14'}",
                      --out, "{{out}}"]
    """)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pipelines.dry_run import plan_recipe
        from pipelines.recipe import load_recipe
        root = Path({str(tmp_path / 'out')!r})
        plan = plan_recipe(load_recipe({str(path)!r}, root), root)
        assert plan.ok, plan.problems
        print(plan.step("data").facts["splits"], "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "{'val': 200, 'test': 212} False"


def test_pipelines_list_shows_every_recipe():
    result = CliRunner().invoke(pipelines, ["list"])
    assert result.exit_code == 0
    names = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert {"demo", *REAL} <= names


# ------------------------------------------------------------------------------ figures
FIGURES = """
    name: figs
    steps:
      - id: train
        seeds: [0]
        command: [emit, "{out}"]
      - id: other
        command: [emit, "{out}"]
"""


def test_figures_of_done_steps_are_gathered_with_an_index(tmp_path):
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, FIGURES), root)
    train, other = recipe.step("train-s0"), recipe.step("other")
    for step, names in ((train, ["plot_training.png", "sub/plot_test_v1.png"]),
                        (other, ["plot_training.png"])):
        for name in names:
            (step.folder(root) / name).parent.mkdir(parents=True, exist_ok=True)
            (step.folder(root) / name).write_bytes(f"png of {step.id}/{name}".encode())
    (train.folder(root) / runner.DONE).write_text(json.dumps({"argvs": [], "key": train.key}))
    (root / "figures").mkdir(parents=True)
    (root / "figures" / "gone_plot.png").write_bytes(b"stale")

    gathered = gather_figures(recipe, root)
    figures = root / "figures"
    assert set(gathered) == {"train-s0"}  # `other` is not done: its plot is not gathered
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "train-s0_plot_training.png", "train-s0_sub_plot_test_v1.png"]
    assert (figures / "train-s0_sub_plot_test_v1.png").read_bytes() == \
        b"png of train-s0/sub/plot_test_v1.png"
    index = (figures / "index.md").read_text()
    assert "## train-s0" in index and "(train-s0_plot_training.png)" in index
    assert "other" not in index


def test_write_outputs_gathers_figures(tmp_path, monkeypatch):
    fake = ("import pathlib, sys; out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, "
            "exist_ok=True); (out / 'plot_training.png').write_bytes(b'x')")
    monkeypatch.setattr(runner, "weakfeat_command",
                        lambda args: [sys.executable, "-c", fake, *args])
    root = tmp_path / "out"
    recipe = load_recipe(write_recipe(tmp_path, FIGURES), root)
    assert runner.run_recipe(recipe, root, echo=lambda *_: None).ok
    write_outputs(recipe, root, echo=lambda *_: None)
    assert sorted(p.name for p in (root / "figures").glob("*.png")) == [
        "other_plot_training.png", "train-s0_plot_training.png"]


def test_demo_dry_run_estimates_every_step_from_the_planned_synthetic_annotations(tmp_path):
    plan = plan_recipe(load_recipe("demo", tmp_path / "out"), tmp_path / "out")
    assert plan.ok, plan.problems
    assert not any("not estimated" in d for p in plan.steps for d in p.details)
    demo = next(p for p in plan.steps if p.step.id.startswith("data-demo"))
    assert demo.facts["splits"] == {"train": 200, "val": 20, "test": 40}
    training = [p for p in plan.steps if p.step.id.startswith("train-")]
    assert training and all(p.train_clips > 0 for p in training)
    exports = [p for p in plan.steps if p.step.id.startswith("export-")]
    assert exports and all(p.export_clips > 0 for p in exports)
    tal = next(p for p in plan.steps if p.step.id.startswith("tal-asl-weak"))
    assert tal.facts["train_videos"] == 200 and tal.facts["val_videos"] == 20
    assert not list((tmp_path / "out").rglob("*.mp4"))  # nothing rendered
