"""Config files inherit through ``_base_``; a step is re-keyed when any file of the chain changes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from data_manifests.config import ConfigError, config_files, load_config


@dataclass(frozen=True)
class Train:
    lr: float = 0.1
    epochs: int = 1


@dataclass(frozen=True)
class Tree:
    name: str = "x"
    train: Train = field(default_factory=Train)


def write(path, content):
    path.write_text(yaml.safe_dump(content))
    return path


def test_a_file_overrides_its_bases_and_overrides_win(tmp_path):
    write(tmp_path / "common.yaml", {"name": "common", "train": {"lr": 0.5, "epochs": 7}})
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "mid.yaml", {"_base_": "../common.yaml", "train": {"epochs": 9}})
    leaf = write(tmp_path / "sub" / "leaf.yaml", {"_base_": ["mid.yaml"], "name": "leaf"})
    config = load_config(Tree, leaf)
    assert config == Tree(name="leaf", train=Train(lr=0.5, epochs=9))
    assert load_config(Tree, leaf, ["train.lr=0.01"]).train.lr == 0.01
    assert [p.name for p in config_files(leaf)] == ["common.yaml", "mid.yaml", "leaf.yaml"]


def test_bad_and_circular_bases_are_named(tmp_path):
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(Tree, tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", {"_base_": "missing.yaml"})
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(Tree, tmp_path / "c.yaml")
    write(tmp_path / "d.yaml", {"_base_": 3})
    with pytest.raises(ConfigError, match="_base_ must be a path"):
        load_config(Tree, tmp_path / "d.yaml")


def test_editing_a_base_rekeys_the_step_that_names_the_leaf(tmp_path):
    from pipelines.recipe import _input_digests

    base = write(tmp_path / "base.yaml", {"train": {"lr": 0.5}})
    leaf = write(tmp_path / "leaf.yaml", {"_base_": "base.yaml"})
    commands = (("extract", "train", "--config", str(leaf)),)
    before = _input_digests(commands, tmp_path / "out")
    write(base, {"train": {"lr": 0.6}})
    assert _input_digests(commands, tmp_path / "out") != before
