"""The shard of a SLURM array task (`shard_from_environment`) and `features` without --shard."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from data_manifests.errors import UserError
from extract.cli import extract as extract_cli
from extract.clip_grid import ShardError, in_shard, shard_from_environment, shard_index
from extract.store import open_store
from tests.extract.test_export import make_manifest


def array(task_id, count, **more) -> dict[str, str]:
    env = {"SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_COUNT": str(count)}
    return env | {f"SLURM_ARRAY_TASK_{k.upper()}": str(v) for k, v in more.items()}


def test_outside_an_array_there_is_no_shard():
    assert shard_from_environment({}) is None
    assert shard_from_environment({"SLURM_JOB_ID": "7", "SLURM_ARRAY_TASK_COUNT": "8"}) is None


@pytest.mark.parametrize("env,shard", [
    (array(3, 8), (3, 8)),  # MIN defaults to 0
    (array(0, 1, min=0, max=0), (0, 1)),
    (array(11, 8, min=8, max=15), (3, 8)),  # --array=8-15
    (array(6, 8, min=0, max=14, step=2), (3, 8)),  # --array=0-14:2
    (array(7, 8, min=0, max=7, step=1), (7, 8)),
])
def test_shard_is_the_task_offset_in_the_array(env, shard):
    assert shard_from_environment(env) == shard


@pytest.mark.parametrize("env,words", [
    (array(8, 8), ["SLURM_ARRAY_TASK_ID=8", "SLURM_ARRAY_TASK_COUNT=8", "0-7"]),
    (array(3, 8, min=5), ["SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_MIN=5"]),
    (array("abc", 8), ["SLURM_ARRAY_TASK_ID='abc'", "not an integer"]),
    (array(1, "eight"), ["SLURM_ARRAY_TASK_COUNT='eight'"]),
    (array(1, 2, min="x"), ["SLURM_ARRAY_TASK_MIN='x'"]),
    ({"SLURM_ARRAY_TASK_ID": "1"}, ["SLURM_ARRAY_TASK_COUNT is not"]),
    (array(0, 0), ["SLURM_ARRAY_TASK_COUNT=0"]),
    (array(3, 8, step=2), ["SLURM_ARRAY_TASK_STEP=2"]),  # 3 is not 0 + k * 2
    (array(2, 3, min=0, max=5), ["SLURM_ARRAY_TASK_MAX=5", "holes"]),  # --array=0,2,5
])
def test_inconsistent_variables_name_the_variable_and_value(env, words):
    with pytest.raises(ShardError) as caught:
        shard_from_environment(env)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    for word in words:
        assert word in message, message


def test_shard_index_agrees_with_in_shard():
    for video_id in [f"v{i}" for i in range(50)] + ["a/b", "ü"]:
        index = shard_index(video_id, 3)
        assert [in_shard(video_id, (i, 3)) for i in range(3)] == [i == index for i in range(3)]


def test_features_takes_its_shard_from_the_array_unless_given(tmp_path):
    root = make_manifest(tmp_path / "m", {"long": 30, "short": 5, "exact": 15, "mid": 20})
    ids = ["exact", "long", "mid", "short"]
    args = ["features", "--backbone", "x3d-tiny", "--manifest", str(root), "--device", "cpu"]
    runner = CliRunner()
    result = runner.invoke(extract_cli, [*args, "--store", str(tmp_path / "env.zarr")],
                           env=array(11, 2, min=10, max=11))
    assert result.exit_code == 0, result.output
    assert "shard 1/2 from SLURM_ARRAY_TASK_ID=11" in result.output
    assert open_store(tmp_path / "env.zarr").video_ids() == [v for v in ids if in_shard(v, (1, 2))]
    # an explicit --shard wins over the environment
    result = runner.invoke(extract_cli, [*args, "--store", str(tmp_path / "given.zarr"),
                                         "--shard", "0/2"], env=array(11, 2, min=10, max=11))
    assert result.exit_code == 0, result.output
    assert open_store(tmp_path / "given.zarr").video_ids() == [v for v in ids
                                                              if in_shard(v, (0, 2))]
    # inconsistent variables: one line naming them, before any work
    result = runner.invoke(extract_cli, [*args, "--store", str(tmp_path / "bad.zarr")],
                           env=array(5, 2))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        ("Error: SLURM_ARRAY_TASK_ID=5 gives shard 5 but SLURM_ARRAY_TASK_COUNT=2 "
         "(SLURM_ARRAY_TASK_MIN=0): use a contiguous --array such as 0-1, or give --shard i/N")]
    assert not (tmp_path / "bad.zarr").exists()
