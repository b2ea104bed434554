"""DDP on CPU: 2 processes (gloo) under torchrun keep identical weights and ASE state."""

from __future__ import annotations

import functools
import json
import operator
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# The tiny-dataset writer, however pytest imports this folder.
sys.path.insert(0, str(Path(__file__).parent))
from test_training_loop import write_tiny_dataset

REPO = Path(__file__).resolve().parents[2]


def torchrun_two_cpu_processes(source: str, folder: Path, *args: object) -> None:
    """Run the script ``source`` (in ``folder``) as 2 gloo ranks under torchrun; must exit 0."""
    script = folder / "ddp_script.py"
    script.write_text(source)
    # The repository first, then whatever the caller's PYTHONPATH already holds.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", str(script), *map(str, args)],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_cpu_processes_agree(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", num_videos=10)
    torchrun_two_cpu_processes(DDP_SCRIPT, tmp_path, manifest, tmp_path / "run")
    r0 = torch.load(tmp_path / "run" / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "run" / "rank1.pt", weights_only=False)
    for key in r0["model"]:
        assert torch.allclose(r0["model"][key].float(), r1["model"][key].float(), atol=1e-6), key
    assert torch.equal(r0["ase"], r1["ase"])
    # in an epoch (2 batches per rank) the ranks see different videos, and each applied the
    # other's ASE updates too
    epoch0 = [functools.reduce(operator.iadd, r["own_videos"][:2], []) for r in (r0, r1)]
    assert len(epoch0[0]) == 4 and set(epoch0[0]).isdisjoint(epoch0[1])
    assert (r0["ase"][1] > 0).all()


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    import extract.training.loop as loop
    from extract.training.config import load_stage1_config

    torch.set_num_threads(1)
    manifest, out = sys.argv[1], sys.argv[2]
    cfg = load_stage1_config(None, [f"data.manifest={manifest}", "data.num_workers=0",
                                    "train.batch_size=2", "train.epochs=2",
                                    "train.mode=adaptfocus", "adaptfocus.warmup_fraction=0.5",
                                    "adaptfocus.naive_every_epochs=1",
                                    "adaptfocus.naive_clips=3", "train.log_every=1",
                                    "train.device=cpu"])
    captured = {"own_videos": []}
    real_update, real_save = loop.ActionSaliency.update_online, loop._save_checkpoint

    def spy_update(self, video_index, times, probs):
        captured["own_videos"].append(video_index.tolist())
        captured["ase_obj"] = self
        return real_update(self, video_index, times, probs)

    def spy_save(run, rt, config, step, model, *rest):
        captured["model"] = {k: v.clone() for k, v in model.state_dict().items()}
        return real_save(run, rt, config, step, model, *rest)

    loop.ActionSaliency.update_online = spy_update
    loop._save_checkpoint = spy_save
    loop.train(cfg, out)
    rank = int(os.environ["RANK"])
    torch.save({"model": captured["model"], "ase": captured["ase_obj"].state.clone(),
                "own_videos": captured["own_videos"]}, f"{out}/rank{rank}.pt")
""")


@pytest.mark.slow
def test_two_ranks_share_the_evaluation_and_only_rank_0_writes(tmp_path):
    """Under torchrun each rank predicts its half of the videos; rank 0's result (the only
    results file) equals a single process's, so N processes evaluate ~N times faster."""
    from test_training_loop import config

    from extract.training.evaluate import evaluate_run
    from extract.training.loop import train

    manifest = write_tiny_dataset(tmp_path / "data", num_videos=8)
    run = train(config(manifest, "train.epochs=1", "train.device=cpu"), tmp_path / "run")
    single = evaluate_run(run, manifest, split="train", views="2x1", device="cpu",
                          plot_videos=0)
    torchrun_two_cpu_processes(DDP_EVAL_SCRIPT, tmp_path, manifest, run)
    seen = [json.loads((run / f"seen{rank}.json").read_text()) for rank in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 3 and set(seen[0]).isdisjoint(seen[1])
    assert not (run / "result1.json").exists()  # rank 1 returned None
    sharded = json.loads((run / "result0.json").read_text())
    assert sharded["num_videos"] == single["num_videos"] == 6
    assert sharded["mAP"] == pytest.approx(single["mAP"], abs=1e-6)
    assert sharded["ap_per_class"] == pytest.approx(single["ap_per_class"], abs=1e-6)


DDP_EVAL_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    import extract.training.evaluate as evaluate

    torch.set_num_threads(1)
    manifest, run = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    seen, real = [], evaluate.predict_video_views

    def spy(model, manifest, video, *args, **kwargs):
        seen.append(video.video_id)
        return real(model, manifest, video, *args, **kwargs)

    evaluate.predict_video_views = spy
    result = evaluate.evaluate_run(run, manifest, split="train", views="2x1", device="cpu",
                                   plot_videos=0)
    with open(f"{run}/seen{rank}.json", "w") as fh:
        json.dump(seen, fh)
    if result is not None:
        with open(f"{run}/result{rank}.json", "w") as fh:
            json.dump(result, fh)
""")
