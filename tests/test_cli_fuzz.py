"""Bad input to every command: the exact exit code, one line that names the file, the item and
the value, no traceback, and nothing written that a corrected command would trip over.

Each case is a command line over a tiny world (a stage-2 manifest and store, a trained stage-2
run, a stage-1 video dataset) with one thing wrong. Exit code 2 is click's usage error (a flag
or a path click checks itself), 1 every error of the project (data_manifests.errors).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.main import cli

sys.path.insert(0, str(Path(__file__).parent / "downstream"))
sys.path.insert(0, str(Path(__file__).parent / "extract"))
from test_training_loop import write_tiny_dataset
from tiny_data import write_tiny

CONFIGS = Path(__file__).resolve().parents[1] / "extract" / "training" / "configs"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    tiny, manifest, store = write_tiny(root / "tal")
    run = root / "run"
    invoke(["downstream", "train", "tal", "--method", "mil", "--features", str(store),
            "--manifest", str(manifest), "--set", "train.epochs=1", "--out", str(run),
            "--no-progress"], expect=0)
    # a copy of the run whose checkpoints are cut short
    broken_run = root / "broken_run"
    shutil.copytree(run, broken_run)
    for checkpoint in (broken_run / "checkpoints").glob("*.pt"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    # a copy of the store with a features chunk gone in a training and in a test video
    damaged = root / "damaged.zarr"
    shutil.copytree(store, damaged)
    broken = {split: next(v.video_id for v in tiny.videos if v.split == split)
              for split in ("train", "test")}
    for video_id in broken.values():
        chunks = damaged / "videos" / video_id / "features" / "c"
        next(p for p in sorted(chunks.rglob("*")) if p.is_file()).unlink()
    videos = write_tiny_dataset(root / "videos", num_videos=4)
    not_a_folder = root / "file.txt"
    not_a_folder.write_text("a file\n")
    return {"manifest": str(manifest), "store": str(store), "run": str(run),
            "broken_run": str(broken_run), "damaged": str(damaged),
            "damaged_train": broken["train"], "damaged_test": broken["test"],
            "videos": str(videos), "file": str(not_a_folder), "tmp": str(root),
            "s1": str(CONFIGS / "c3d-tiny_synthetic-demo.yaml")}


def invoke(argv: list[str], expect: int):
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == expect, (argv, result.output, result.exception)
    if expect:
        assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    return result


TAL = ["downstream", "train", "tal", "--method", "mil", "--features", "{store}",
       "--manifest", "{manifest}", "--no-progress"]
PREDICT = ["downstream", "predict", "{run}", "--features", "{store}", "--manifest", "{manifest}",
           "--split", "test", "--no-progress"]
STAGE1 = ["extract", "train", "--config", "{s1}", "--set", "data.manifest={videos}",
          "--set", "data.num_workers=0"]

# Batch jobs that write what they can, then name what they could not (exit 1).
PARTIAL_BY_DESIGN = {"combine-damaged"}

# (case id, argv, exit code, what the message must name)
CASES = [
    # stage 2: settings
    ("tal-epochs-0", [*TAL, "--set", "train.epochs=0", "--out", "{tmp}/o"], 1,
     ["train.epochs=0", ">= 1"]),
    ("tal-batch-negative", [*TAL, "--set", "train.batch_size=-4", "--out", "{tmp}/o"], 1,
     ["train.batch_size=-4"]),
    ("tal-lr-nan", [*TAL, "--set", "train.lr=.nan", "--out", "{tmp}/o"], 1,
     ["train.lr=nan", "finite"]),
    ("tal-val-fraction", [*TAL, "--set", "data.val_fraction=1.5", "--out", "{tmp}/o"], 1,
     ["data.val_fraction=1.5"]),
    ("tal-wrong-type", [*TAL, "--set", "train.epochs=abc", "--out", "{tmp}/o"], 1,
     ["train.epochs='abc'", "int"]),
    ("tal-unknown-key", [*TAL, "--set", "nosuch.key=1", "--out", "{tmp}/o"], 1,
     ["nosuch"]),
    ("tal-unknown-method", [*TAL[:4], "nosuch", *TAL[5:], "--out", "{tmp}/o"], 1,
     ["'nosuch'", "mil"]),
    ("tal-dropout-1", [*TAL, "--set", "mil.dropout=1", "--out", "{tmp}/o"], 1,
     ["mil.dropout=1"]),
    ("tal-device", [*TAL, "--set", "train.device=gpu", "--out", "{tmp}/o"], 1,
     ["train.device='gpu'"]),
    ("seg-no-layers", ["downstream", "train", "seg", "--method", "mstcn", *TAL[5:],
                       "--set", "mstcn.num_layers=0", "--out", "{tmp}/o"], 1,
     ["mstcn.num_layers=0", "> 0"]),
    # stage 2: files
    ("tal-missing-store", [*TAL[:5], "--features", "{tmp}/none.zarr", *TAL[7:],
                           "--out", "{tmp}/o"], 1, ["none.zarr"]),
    ("tal-out-under-file", [*TAL, "--out", "{file}/run"], 1,
     ["file.txt", "a file stands where a folder is needed"]),
    ("tal-damaged-store", [*TAL[:5], "--features", "{damaged}", *TAL[7:],
                           "--out", "{tmp}/o"], 1, ["damaged.zarr", "{damaged_train}"]),
    ("tal-existing-run", [*TAL, "--out", "{run}"], 1, ["{run}", "--resume"]),
    ("tal-resume-changed", [*TAL, "--set", "mil.hidden=8", "--out", "{run}", "--resume"], 1,
     ["mil.hidden", "256 -> 8"]),
    ("tal-resume-damaged", [*TAL, "--set", "train.epochs=1", "--out", "{broken_run}",
                            "--resume"], 1, ["last.pt", "damaged or not a checkpoint"]),
    ("predict-split", [*PREDICT[:-3], "--split", "nosuch", "--no-progress",
                       "--out", "{tmp}/p.json"], 1, ["'nosuch'", "test"]),
    ("predict-not-a-run", [*PREDICT[:2], "{tmp}", *PREDICT[3:], "--out", "{tmp}/p.json"], 1,
     ["no checkpoints/best.pt"]),
    ("predict-damaged-run", [*PREDICT[:2], "{broken_run}", *PREDICT[3:],
                             "--out", "{tmp}/p.json"], 1, ["best.pt", "damaged"]),
    ("predict-checkpoint", [*PREDICT, "--checkpoint", "middle", "--out", "{tmp}/p.json"], 2,
     ["'middle'"]),
    ("predict-damaged-store", [*PREDICT[:3], "--features", "{damaged}", *PREDICT[5:],
                               "--out", "{tmp}/p.json"], 1, ["{damaged_test}"]),
    ("evaluate-not-json", ["downstream", "evaluate", "tal", "--ground-truth", "{manifest}",
                           "--predictions", "{file}", "--out", "{tmp}/e.json"], 1,
     ["file.txt", "not valid JSON"]),
    ("evaluate-folder", ["downstream", "evaluate", "tal", "--ground-truth", "{manifest}",
                         "--predictions", "{tmp}", "--out", "{tmp}/e.json"], 1,
     ["is a folder"]),
    # stage 1
    ("s1-lr-negative", [*STAGE1, "--set", "optim.lr=-1", "--out", "{tmp}/x"], 1,
     ["optim.lr=-1.0", ">= 0"]),
    ("s1-workers-negative", [*STAGE1, "--set", "data.num_workers=-2", "--out", "{tmp}/x"], 1,
     ["data.num_workers=-2"]),
    ("s1-views-0", [*STAGE1, "--set", "eval.views_t=0", "--out", "{tmp}/x"], 1,
     ["eval.views_t=0"]),
    ("s1-backbone", [*STAGE1, "--set", "model.backbone=nosuch", "--out", "{tmp}/x"], 1,
     ["'nosuch'", "x3d-tiny"]),
    ("s1-out-under-file", [*STAGE1, "--set", "train.epochs=1", "--out", "{file}/x"], 1,
     ["file.txt"]),
    ("s1-cuda", [*STAGE1, "--set", "train.device=cuda:7", "--out", "{tmp}/x"], 1,
     ["train.device='cuda:7'"]),
    # export and stores
    ("export-clip", ["extract", "features", "--backbone", "c3d-tiny", "--manifest", "{videos}",
                     "--store", "{tmp}/s.zarr", "--clip", "8x0", "--step", "8"], 1,
     ["--clip 8x0"]),
    ("export-suffix", ["extract", "features", "--backbone", "c3d-tiny", "--manifest",
                       "{videos}", "--store", "{tmp}/s.h6", "--clip", "8x2", "--step", "8"], 1,
     ["s.h6", ".zarr"]),
    ("export-step-0", ["extract", "features", "--backbone", "c3d-tiny", "--manifest",
                       "{videos}", "--store", "{tmp}/s.zarr", "--clip", "8x2", "--step", "0"],
     2, ["--step"]),
    ("export-run", ["extract", "features", "--run", "{tmp}", "--manifest", "{videos}",
                    "--store", "{tmp}/s.zarr"], 1, ["no checkpoint"]),
    ("export-damaged-run", ["extract", "features", "--run", "{broken_run}", "--manifest",
                            "{videos}", "--store", "{tmp}/s.zarr"], 1, ["last.pt"]),
    ("inspect-verify", ["extract", "inspect", "{damaged}", "--verify"], 1,
     ["{damaged_train}", "{damaged_test}"]),
    ("convert-under-file", ["extract", "convert", "{store}", "{file}/x.h5"], 1,
     ["file.txt", "a file stands where a folder is needed"]),
    ("export-npy-under-file", ["extract", "export-npy", "{store}", "{file}/npy"], 1,
     ["file.txt", "a file stands where a folder is needed"]),
    ("import-npy-empty", ["extract", "import-npy", "{tmp}", "--store", "{tmp}/i.zarr",
                          "--clip", "16x1", "--step", "16", "--fps", "25"], 1,
     ["no .npy files"]),
    ("import-npy-fps", ["extract", "import-npy", "{tmp}", "--store", "{tmp}/i.zarr",
                        "--clip", "16x1", "--step", "16", "--fps", "fast"], 2, ["fast"]),
    ("combine-damaged", ["extract", "combine", "{store}", "{damaged}", "--out",
                         "{tmp}/c.zarr"], 1, ["{damaged_train}", "10 videos written"]),
    ("evaluate-run", ["extract", "evaluate", "{tmp}", "--manifest", "{videos}"], 1,
     ["no checkpoint"]),
    ("evaluate-views", ["extract", "evaluate", "{run}", "--manifest", "{videos}", "--views",
                        "3x2"], 1, ["3x2"]),
    # data and pipelines
    ("synth-preset", ["data", "synth", "--preset", "nosuch", "--out", "{tmp}/d"], 1,
     ["unknown synthetic preset 'nosuch'"]),
    ("synth-videos", ["data", "synth", "--preset", "tiny", "--videos", "-3", "--out",
                      "{tmp}/d"], 2, ["-3"]),
    ("build-annotations", ["data", "build", "thumos14", "--annotations", "{tmp}/none",
                           "--out", "{tmp}/d"], 1, ["none", "not found"]),
    ("stats-not-manifest", ["data", "stats", "{tmp}"], 1, ["meta.json"]),
    ("recipe-unknown", ["pipelines", "run", "nosuch", "--out", "{tmp}/r"], 1,
     ["no recipe 'nosuch'"]),
    ("recipe-param", ["pipelines", "run", "smoke", "--param", "nosuch=1", "--dry-run",
                      "--out", "{tmp}/r"], 1, ["nosuch"]),
]


@pytest.mark.parametrize("case, argv, code, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_what_is_wrong(world, case, argv, code, names):
    before = sorted(p.name for p in Path(world["tmp"]).iterdir())
    result = invoke([a.format(**world) for a in argv], expect=code)
    message = result.output.strip()
    errors = [line for line in message.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, message
    assert "Traceback" not in message
    if code == 1:
        assert message.splitlines()[-1] == errors[0] and "\n" not in errors[0]
    for name in names:
        assert name.format(**world) in errors[0], (name, errors[0])
    # nothing left behind that the corrected command would refuse ("pass --resume", "exists")
    after = sorted(p.name for p in Path(world["tmp"]).iterdir())
    assert after == before or case in PARTIAL_BY_DESIGN, message
