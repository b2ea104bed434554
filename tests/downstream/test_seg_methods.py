"""LTContext and POC: their layers and losses against hand-computed values, forward/backward on
tiny inputs, padding invariance, POC's set supervision (it never reads frame labels), and one
small learning check each."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import pytest
import torch

from data_manifests.schema import Manifest
from downstream.metrics.segmentation import evaluate_files, read_label_folder
from downstream.seg import ltcontext, poc
from downstream.training import predict_run, train_run
from tests.downstream.tiny_data import tiny_manifest, write_tiny

TINY_CONFIGS = {
    "ltcontext": ltcontext.LtcontextConfig(num_stages=2, num_layers=3, model_dim=8, window=4,
                                           long_term=3),
    "poc": poc.PocConfig(hidden_size=16, thres_hidden=8, norm_groups=4, dilations=(1, 2, 4),
                         pool_after=(0, 2)),
}
BUILDERS = {"ltcontext": ltcontext.build, "poc": poc.build}


def tiny_model(method: str, feature_dim: int = 6, num_classes: int = 3, **changes):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY_CONFIGS[method], **changes)
    return BUILDERS[method](feature_dim=feature_dim, num_classes=num_classes,
                            **dataclasses.asdict(cfg))


def padded_batch(lengths=(23, 17), dim=6, num_classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch, length = len(lengths), max(lengths)
    features = torch.randn(batch, length, dim, generator=gen)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    labels = torch.randint(0, num_classes + 1, (batch, length), generator=gen)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
        features[b, n:] = 7.0  # garbage in the padding must not matter
        labels[b, n:] = -100
    video_labels = torch.zeros(batch, num_classes)
    video_labels[0, [0, 1]] = 1.0
    video_labels[1, [0, 1, 2]] = 1.0
    return {"features": features, "mask": mask, "frame_labels": labels,
            "video_labels": video_labels}


# ---- both methods -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(TINY_CONFIGS))
def test_every_parameter_gets_a_finite_gradient(method):
    model = tiny_model(method).train()
    loss, terms = model.training_loss(padded_batch())
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in terms.values())
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    scores = model.segment(padded_batch()["features"], padded_batch()["mask"])
    assert scores.shape == (2, 23, 4)


@pytest.mark.parametrize("method", sorted(TINY_CONFIGS))
def test_padding_does_not_change_the_valid_outputs(method):
    model = tiny_model(method).eval()
    batch = padded_batch()
    with torch.no_grad():
        together = model.segment(batch["features"], batch["mask"])
        for b, n in enumerate((23, 17)):
            alone = model.segment(batch["features"][b:b + 1, :n], batch["mask"][b:b + 1, :n])
            torch.testing.assert_close(together[b, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert (together[1, 17:] == 0).all()


# ---- LTContext --------------------------------------------------------------------------------

def test_windowed_groups_widen_each_query_window_by_half_a_window():
    steps = torch.arange(10, dtype=torch.float32)[None, :, None]  # (1, T, 1): value = index
    valid = torch.ones(1, 10, dtype=torch.bool)
    q, kv, ok, n = ltcontext.windowed_groups(steps, steps, valid, 4)
    assert n == 3 and q.shape == (3, 4, 1) and kv.shape == (3, 8, 1)
    assert q[1, :, 0].tolist() == [4, 5, 6, 7]
    # keys of window 1: steps 2 .. 9 (W/2 = 2 on each side of 4 .. 7)
    assert kv[1, :, 0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
    assert ok[0].tolist() == [False, False] + [True] * 6  # left padding of window 0
    assert ok[2].tolist() == [True] * 4 + [False] * 4  # steps 6 .. 9, then padding
    # odd window: 1 step widening on the left, 2 on the right
    q, kv, ok, n = ltcontext.windowed_groups(steps, steps, valid, 3)
    assert n == 4 and kv[1, :, 0].tolist() == [2, 3, 4, 5, 6, 7]


def test_long_term_groups_take_every_gth_step_and_undo():
    x = torch.arange(10, dtype=torch.float32)[None, :, None]
    groups = ltcontext.long_term_groups(x, 4)  # (4, 3, 1)
    assert groups[1, :, 0].tolist() == [1, 5, 9]
    assert groups[3, :, 0].tolist() == [3, 7, 0]  # the last is padding
    valid = ltcontext.long_term_groups(torch.ones(1, 10, dtype=torch.bool), 4)
    assert valid[3].tolist() == [True, True, False]
    back = ltcontext.undo_long_term_groups(groups, batch=1, length=10)
    assert back[0, :, 0].tolist() == list(range(10))


def test_ltcontext_loss_is_ce_plus_weighted_smoothing_per_stage():
    model = tiny_model("ltcontext").eval()
    batch = padded_batch()
    with torch.no_grad():
        loss, terms = model.training_loss(batch)
        stages = model(batch["features"], batch["mask"])
    assert len(stages) == 2
    ce = sum(torch.nn.functional.cross_entropy(s.reshape(-1, 4), batch["frame_labels"].reshape(-1),
                                               ignore_index=-100) for s in stages)
    assert terms["loss_ce"] == pytest.approx(float(ce), rel=1e-5)
    assert float(loss) == pytest.approx(terms["loss_ce"] + terms["loss_smooth"], rel=1e-5)


def test_ltcontext_learns_long_range_context():
    """Every step's class is set by a cue at step 0. Two blocks of kernel-3 convolutions and
    4-step windows see a few steps; the long-term attention (every 4th step of the video) and
    then the windows bring the cue to all 64 steps. With the long-term span as long as the
    video (each group one step), the far steps are at chance."""
    def toy(n, gen):
        x = 0.1 * torch.randn(n, 64, 4, generator=gen)
        cue = torch.randint(0, 2, (n,), generator=gen)
        x[:, 0, 0] = cue.float() * 2 - 1
        return x, cue[:, None].expand(n, 64).clone()

    accuracy = {}
    for span in (4, 64):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = tiny_model("ltcontext", feature_dim=4, num_classes=1, num_stages=1, num_layers=2,
                           model_dim=16, window=4, long_term=span, dropout=0.0,
                           attn_dropout=0.0, attn_out_dropout=0.0, channel_dropout=0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
        mask = torch.ones(16, 64, dtype=torch.bool)
        for _ in range(200 if span == 4 else 60):
            x, y = toy(16, gen)
            loss, _ = model.training_loss({"features": x, "mask": mask, "frame_labels": y})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        x, y = toy(64, gen)
        with torch.no_grad():
            pred = model.eval().segment(x, torch.ones(64, 64, dtype=torch.bool)).argmax(-1)
        accuracy[span] = float((pred == y)[:, 16:].float().mean())
    assert accuracy[4] > 0.95
    assert accuracy[64] < 0.75


# ---- POC: losses ------------------------------------------------------------------------------

def test_ltcontext_schedule_is_the_official_constant_cosine_decay():
    """The official scheduler: SequentialLR([LinearLR(start_factor=1), CosineAnnealingLR(
    T_max=180 - 15, eta_min=5e-5)], milestones=[15]), stepped once per epoch."""
    from downstream.tasks import get_task
    from downstream.training.config import load_run_config
    from downstream.training.loop import epoch_schedule

    config = load_run_config(get_task("seg"), "ltcontext")
    ours = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    theirs = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    schedule = epoch_schedule(config, ours)
    reference = torch.optim.lr_scheduler.SequentialLR(theirs, schedulers=[
        torch.optim.lr_scheduler.LinearLR(theirs, start_factor=1.0),
        torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=165, eta_min=5e-5)],
        milestones=[15])
    rates = []
    for _ in range(config.train.epochs):
        rates.append(ours.param_groups[0]["lr"])
        assert rates[-1] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9)
        for optimizer, scheduler in ((ours, schedule), (theirs, reference)):
            optimizer.step()
            scheduler.step()
    assert rates[0] == rates[15] == 2.5e-4 and rates[16] < 2.5e-4 and rates[-1] > 5e-5


def test_order_scores_of_hard_attentions():
    attention = torch.zeros(4, 3)
    attention[0, 0] = attention[2, 1] = attention[3, 2] = 1.0  # 0 at t=0, 1 at t=2, 2 at t=3
    order = poc.order_scores(attention)
    assert order[0, 1] == pytest.approx(1.0, abs=1e-4)  # 0 before 1
    assert order[1, 0] == pytest.approx(0.0, abs=1e-4)
    assert order[1, 2] == pytest.approx(1.0, abs=1e-4)
    assert order[2, 0] == pytest.approx(0.0, abs=1e-4)
    half = torch.tensor([[0.5], [0.5]]).expand(2, 2)  # two identical spread attentions
    assert poc.order_scores(half)[0, 1] == pytest.approx(0.25, abs=1e-4)


def test_poc_loss_is_zero_for_consistent_orders_and_half_for_opposite_ones():
    before = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # O(0,1) = 1
    after = before.t().clone()  # O(1,0) = 1
    both = torch.tensor([True, True, False])
    sets = torch.stack([both, both])
    assert float(poc.poc_loss(torch.stack([before, before]), sets)) == pytest.approx(0.0)
    # ref(0,1) = ref(1,0) = 1/2: each video pays 1 - 1/2
    assert float(poc.poc_loss(torch.stack([before, after]), sets)) == pytest.approx(0.5)
    # a pair in one video only carries no reference: no term
    alone = torch.stack([both, torch.tensor([True, False, True])])
    assert float(poc.poc_loss(torch.stack([before, after]), alone)) == 0.0


def test_lsep_and_frame_rank_losses():
    scores = torch.tensor([2.0, 0.0, -1.0])
    in_set = torch.tensor([True, False, False])
    expected = math.log1p(math.exp(-2.0) + math.exp(-3.0))
    assert float(poc.lsep_loss(scores, in_set, torch.ones(3))) == pytest.approx(expected)
    in_set = torch.tensor([True, True, False])
    weighted = math.log1p(0.5 * math.exp(-3.0) + 1.5 * math.exp(-1.0))  # weights 1, 3 -> .5, 1.5
    assert float(poc.lsep_loss(scores, in_set, torch.tensor([1.0, 3.0, 1.0]))) == pytest.approx(
        weighted)
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    # step 0: gaps -1, 0; step 1: gaps 0, -2 (out-of-set mean is 0)
    frame = (math.log(1 + math.exp(-1) + 1) + math.log(1 + 1 + math.exp(-2))) / 2
    assert float(poc.frame_rank_loss(logits, in_set)) == pytest.approx(frame)
    assert float(poc.frame_rank_loss(logits, torch.ones(3, dtype=torch.bool))) == 0.0


def test_length_and_centering_losses():
    probs = torch.full((10, 2), 0.5)
    probs[:, 1] = 0.05  # background (index 1) mass 0.5, below ceil(10 / (1 * 2)) = 5
    assert float(poc.length_loss(probs, 2, 1, 1.0)) == pytest.approx(-math.log(0.5 / 5))
    assert float(poc.length_loss(probs, 2, 1, 100.0)) == pytest.approx(-math.log(0.5))
    assert float(poc.length_loss(probs, 2, 1, 0.0)) == 0.0
    compact = torch.zeros(5, 1)
    compact[2] = 1.0
    assert float(poc.centering_loss(compact)) == pytest.approx(0.0, abs=1e-8)
    spread = torch.zeros(5, 1)
    spread[0] = spread[4] = 1.0  # centre 0.5, both at distance 0.5
    assert float(poc.centering_loss(spread)) == pytest.approx(2 * 0.25 / 5, rel=1e-4)


# ---- POC: model -------------------------------------------------------------------------------

def test_poc_class_weights_come_from_the_training_sets_once():
    model = tiny_model("poc")
    sets = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    model.start_epoch(0, lambda: [{"video_labels": sets[:2]}, {"video_labels": sets[2:]}])
    # frequencies 3/4, 1/4, 1/4 -> (1 - f) / f = 1/3, 3, 3; never-present or always-present
    # classes and background keep weight 1
    torch.testing.assert_close(model.class_weight, torch.tensor([1 / 3, 3.0, 3.0, 1.0]))
    model.start_epoch(1, lambda: [{"video_labels": torch.ones(2, 3)}])
    torch.testing.assert_close(model.class_weight, torch.tensor([1 / 3, 3.0, 3.0, 1.0]))


def test_poc_decodes_inside_the_predicted_set(monkeypatch):
    model = tiny_model("poc").eval()  # pooling by 4: feature step t reads pooled step t // 4
    logits = torch.tensor([[5.0, 1.0, 0.0, 2.0], [0.0, 3.0, 1.0, 2.0], [0.0, 0.0, 9.0, 1.0]])
    margin = {"in": torch.tensor([1.0, -1.0, -1.0, 1.0]), "none": -torch.ones(4)}

    def video(features, case):
        return {"logits": logits, "scores": margin[case], "thres": torch.zeros(4)}

    features, mask = torch.zeros(1, 10, 6), torch.ones(1, 10, dtype=torch.bool)
    monkeypatch.setattr(model, "video", lambda f: video(f, "in"))
    labels = model.segment(features, mask)[0].argmax(-1).tolist()
    # set {0, background}: pooled steps -> 0, background, background (class 2 is out)
    assert labels == [0] * 4 + [3] * 4 + [3] * 2
    monkeypatch.setattr(model, "video", lambda f: video(f, "none"))
    labels = model.segment(features, mask)[0].argmax(-1).tolist()
    assert set(labels) == {0}  # empty set: the class of largest margin (the first of ties)


class NoFrameLabels(dict):
    """A batch that fails the test when frame labels are read."""

    def __getitem__(self, key):
        assert key != "frame_labels", "POC read the frame labels"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "frame_labels", "POC read the frame labels"
        return super().get(key, default)


def test_poc_trains_on_action_sets_only(tmp_path):
    batch = padded_batch()
    batch.pop("frame_labels")
    loss, _ = tiny_model("poc").training_loss(NoFrameLabels(batch))
    assert torch.isfinite(loss)
    # Training videos without segments (val and test keep theirs: validation scores frames).
    manifest = tiny_manifest()
    sets_only = Manifest(manifest.meta, tuple(replace(v, segments=None, points=None)
                                              if v.split == "train" else v
                                              for v in manifest.videos))
    _, manifest_dir, store = write_tiny(tmp_path, sets_only)
    results = train_run(task="seg", method="poc", features=store, manifest=manifest_dir,
                        out=tmp_path / "run", progress=False,
                        overrides=["train.epochs=2", "poc.hidden_size=16", "poc.thres_hidden=8"])
    assert results["epochs"] == 2 and 0 <= results["val_Acc"] <= 1
    out = predict_run(tmp_path / "run", features=store, manifest=manifest_dir,
                      out=tmp_path / "pred", progress=False)
    test = [v for v in manifest.videos if v.split == "test"]
    assert set(read_label_folder(out)) == {v.video_id for v in test}
    metrics = evaluate_files(manifest_dir, out, subset="test")
    assert {"Acc", "IoU", "IoD"} <= set(metrics)


def test_poc_learns_to_segment_from_action_sets():
    """Videos of 2 of 4 actions (in a fixed order) between background, trained on their sets
    only: the predicted labelling beats the all-background answer by far and finds most
    action steps (a broken attention or decoding gives background or the wrong action)."""
    num_classes, steps = 4, 32

    def toy(n, gen):
        x = 0.3 * torch.randn(n, steps, 12, generator=gen)
        labels = torch.full((n, steps), num_classes)
        sets = torch.zeros(n, num_classes)
        for b in range(n):
            start = int(torch.randint(2, 6, (1,), generator=gen))
            for action in torch.randperm(num_classes, generator=gen)[:2].sort().values.tolist():
                length = int(torch.randint(steps // 4, steps // 3, (1,), generator=gen))
                labels[b, start:start + length] = action
                sets[b, action] = 1.0
                start += length + int(torch.randint(2, 5, (1,), generator=gen))
        x[..., :num_classes + 1] += torch.nn.functional.one_hot(labels, num_classes + 1)
        return x, labels, sets

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = tiny_model("poc", feature_dim=12, num_classes=num_classes, norm_groups=2,
                       dilations=(1, 2), pool_after=())
    model.start_epoch(0, lambda: [{"video_labels": toy(64, gen)[2]}])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    mask = torch.ones(4, steps, dtype=torch.bool)
    for _ in range(300):
        x, _, sets = toy(4, gen)
        loss, _ = model.training_loss(NoFrameLabels(features=x, mask=mask, video_labels=sets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y, _ = toy(32, gen)
    with torch.no_grad():
        pred = model.eval().segment(x, torch.ones(32, steps, dtype=torch.bool)).argmax(-1)
    action = y < num_classes
    background_share = float((~action).float().mean())
    assert float((pred == y).float().mean()) > background_share + 0.25
    assert float((pred == y)[action].float().mean()) > 0.6
