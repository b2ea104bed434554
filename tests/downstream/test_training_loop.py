"""The shared stage-2 loop: exact resume, selection on validation, inputs checked first, the
config tree built from the method declarations."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from data_manifests.config import ConfigError
from downstream.tal import METHODS
from downstream.tasks import TASKS, get_task
from downstream.training import train_run
from downstream.training.config import config_class, load_run_config
from tests.downstream.tiny_data import tiny_manifest, write_tiny

TINY = ["train.batch_size=4", "train.lr=0.001", "data.max_snippets=24", "mil.hidden=16",
        "lacp.hidden=16", "rskp.hidden=16", "rskp.memory_warmup_epochs=1",
        "lacp.search_start_epoch=1", "lacp.search_every=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    _, manifest_dir, store = write_tiny(root, tiny_manifest(activities=False))
    return root, manifest_dir, store


@pytest.mark.parametrize("method", ["mil", "lacp", "rskp"])
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tiny, method):
    """Crops, shuffling, dropout and the methods' epoch state (LACP's sequences, RSKP's memory)
    all continue where they stopped."""
    root, manifest_dir, store = tiny
    straight = root / f"straight_{method}"
    train_run(task="tal", method=method, features=store, manifest=manifest_dir, out=straight,
              overrides=[*TINY, "train.epochs=3"], progress=False)
    split = root / f"split_{method}"
    train_run(task="tal", method=method, features=store, manifest=manifest_dir, out=split,
              overrides=[*TINY, "train.epochs=2"], progress=False)
    train_run(task="tal", method=method, features=store, manifest=manifest_dir, out=split,
              overrides=[*TINY, "train.epochs=3"], resume=True, progress=False)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(split / "checkpoints" / "last.pt", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        if torch.is_tensor(a["model"][key]):
            assert torch.equal(a["model"][key], b["model"][key]), key
    losses = [[json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (straight, split)]
    assert losses[0] == losses[1]


def test_the_config_tree_comes_from_the_method_declarations():
    task = get_task("tal")
    cls = config_class(task)
    config = load_run_config(task, "lacp")
    assert config.task == "tal" and config.method == "lacp"
    for name, method in METHODS.items():
        assert isinstance(getattr(config, name), method.config)
    with pytest.raises(ConfigError, match="not a tal method"):
        load_run_config(task, "mstcn")
    with pytest.raises(ConfigError, match="method"):  # the Literal of the declared names
        load_run_config(task, "mil", overrides=["method=nope"])
    assert cls is config_class(task)  # built once


def test_a_method_default_sits_below_the_users_settings(monkeypatch, tmp_path):
    from dataclasses import replace

    task = get_task("tal")
    monkeypatch.setitem(task.methods, "mil", replace(task.methods["mil"],
                                                     defaults={"train.lr": 0.005}))
    assert load_run_config(task, "mil").train.lr == 0.005
    assert load_run_config(task, "mil", overrides=["train.lr=0.01"]).train.lr == 0.01
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train:\n  lr: 0.02\n")
    assert load_run_config(task, "mil", yaml_file).train.lr == 0.02
    assert load_run_config(task, "asl").train.lr == 1e-4  # another method: untouched


@pytest.mark.parametrize("bad", ["train.batch_size=-4", "train.epochs=0", "data.val_fraction=1.5",
                                 "train.lr=0", "data.max_snippets=-1"])
def test_nonsense_settings_are_refused_before_the_run_folder_exists(tiny, tmp_path, bad):
    _root, manifest_dir, store = tiny
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        train_run(task="tal", method="mil", features=store, manifest=manifest_dir,
                  out=tmp_path / "run", overrides=[bad], progress=False)
    assert not (tmp_path / "run").exists()


def test_methods_command_lists_every_task_and_method():
    from pipelines.main import cli

    result = CliRunner().invoke(cli, ["downstream", "methods"])
    assert result.exit_code == 0, result.output
    for name in TASKS:
        assert f"{name}: " in result.output
        for method in get_task(name).methods:
            assert f"  {method} " in result.output


def test_group_batches_draw_one_group_per_batch_as_pocs_sampler():
    from downstream.data.batches import GroupBatches

    groups = ["a"] * 5 + ["b"] * 2 + ["c"] * 3
    batches = list(GroupBatches(groups, 2, torch.Generator().manual_seed(0)))
    assert all(len({groups[i] for i in batch}) == 1 for batch in batches)
    assert all(len(batch) == len(set(batch)) for batch in batches)  # no repeat inside a batch
    drawn = sum(len(batch) for batch in batches)
    assert drawn >= len(groups) and drawn - len(batches[-1]) < len(groups)
    again = list(GroupBatches(groups, 2, torch.Generator().manual_seed(0)))
    assert again == batches
    assert {groups[b[0]] for seed in range(5)
            for b in GroupBatches(groups, 2, torch.Generator().manual_seed(seed))} == {"a", "b", "c"}


def test_activity_batches_need_activities_and_resume_exactly(tiny, tmp_path):
    from downstream.data.store_dataset import DataError

    _root, manifest_dir, store = tiny
    with pytest.raises(DataError, match="no activity"):
        train_run(task="tal", method="mil", features=store, manifest=manifest_dir,
                  out=tmp_path / "none", overrides=[*TINY, "data.batches=by_activity"],
                  progress=False)
    assert not (tmp_path / "none").exists()
    _, grouped, _ = write_tiny(tmp_path / "grouped")  # the same videos, with activities
    runs = {}
    for name, plan in (("straight", [3]), ("split", [2, 3])):
        for i, epochs in enumerate(plan):
            train_run(task="tal", method="mil", features=store, manifest=grouped,
                      out=tmp_path / name, resume=i > 0, progress=False,
                      overrides=[*TINY, "data.batches=by_activity", f"train.epochs={epochs}"])
        runs[name] = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=False)
    for key, value in runs["straight"]["model"].items():
        assert torch.equal(value, runs["split"]["model"][key]), key


def test_video_batches_hold_whole_videos_once_per_epoch():
    from downstream.data.batches import VideoBatches

    videos = ["a", "a", "b", "c", "c", "c", "d"]  # items (sentences) of four videos
    batches = list(VideoBatches(videos, 2, torch.Generator().manual_seed(0)))
    assert len(batches) == 2
    assert sorted(i for batch in batches for i in batch) == list(range(len(videos)))
    for batch in batches:
        held = {videos[i] for i in batch}
        assert len(held) <= 2 and all(videos.count(v) == sum(videos[i] == v for i in batch)
                                      for v in held)


def test_resume_refuses_a_changed_config_but_allows_more_epochs(tiny, tmp_path):
    _root, manifest_dir, store = tiny
    run = tmp_path / "run"
    train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=run,
              overrides=[*TINY, "train.epochs=1"], progress=False)
    before = (run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.001 -> 0\.01"):
        train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=run,
                  overrides=[*TINY, "train.epochs=2", "train.lr=0.01"], resume=True,
                  progress=False)
    assert (run / "config.yaml").read_text() == before  # the run's record is untouched
    results = train_run(task="tal", method="mil", features=store, manifest=manifest_dir, out=run,
                        overrides=[*TINY, "train.epochs=2"], resume=True, progress=False)
    assert results["epochs"] == 2


@pytest.mark.parametrize("device", ["gpu", "cuda:0"])
def test_a_device_torch_cannot_use_is_refused_before_the_run_folder(tiny, tmp_path, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is visible here")
    _root, manifest_dir, store = tiny
    with pytest.raises(ConfigError, match=f"train.device={device!r}"):
        train_run(task="tal", method="mil", features=store, manifest=manifest_dir,
                  out=tmp_path / "run", overrides=[*TINY, f"train.device={device}"],
                  progress=False)
    assert not (tmp_path / "run").exists()
