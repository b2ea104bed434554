"""Complex activity recognition through the shared ground: targets, every method forward and
backward, train / predict (Charades submission) / evaluate against the manifest, the CLI, and
a manifest without activities."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifests.schema import Manifest, ManifestMeta, Segment, VideoRecord, write_manifest
from downstream.car import METHODS
from downstream.car.base import sample_steps
from downstream.car.task import TASK, CarPrediction, activity_path, car_metrics
from downstream.data.car import CarDataset
from downstream.data.store_dataset import DataError
from downstream.data.synthetic import SyntheticFeatures, write_store
from downstream.metrics.classification import evaluate_files, read_submission
from downstream.training import evaluate_run, predict_run, train_run
from downstream.training.predict import run_predictions

# Small enough for the 16-d features of the tests.
SMALL = {"mlp": ["mlp.hidden=32"],
         "timeception": ["timeception.groups=2", "timeception.num_steps=16",
                         "timeception.layers=2", "timeception.hidden=32"],
         "ghrm": ["ghrm.channels=32", "ghrm.num_steps=16", "ghrm.hidden=32"]}
TINY = ["train.epochs=2", "train.batch_size=4"]


def scripted_manifest(scripts: dict[str, list[str]], *, videos_per_activity: int, seed: int,
                      splits: tuple[float, float] = (0.6, 0.2)) -> Manifest:
    """Videos that perform an activity's script: its classes in order, one segment each, with
    background between; the activity is the script's name. ``splits``: train/val shares of
    each activity's videos (the rest is test)."""
    rng = np.random.default_rng(seed)
    classes = tuple(sorted({c for steps in scripts.values() for c in steps}))
    videos = []
    for activity, steps in scripts.items():
        for n in range(videos_per_activity):
            cursor, segments = float(rng.uniform(2, 5)), []
            for label in steps:
                length = float(rng.uniform(5, 9))
                segments.append(Segment(label, round(cursor, 2), round(cursor + length, 2)))
                cursor += length + float(rng.uniform(2, 5))
            frac = n / videos_per_activity
            split = "train" if frac < splits[0] else "val" if frac < sum(splits) else "test"
            duration = round(cursor + float(rng.uniform(2, 6)), 2)
            videos.append(VideoRecord(
                video_id=f"{activity}-{n:02d}", path=None, split=split, duration=duration,
                fps=10.0, num_frames=int(duration * 10), labels=tuple(sorted(set(steps))),
                segments=tuple(segments), activity=activity))
    meta = ManifestMeta(dataset="car-toy", classes=classes, activities=tuple(scripts))
    return Manifest(meta, tuple(videos))


SCRIPTS = {"breakfast": ["a", "b", "c"], "lunch": ["c", "d"], "dinner": ["d", "e", "f"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("car")
    manifest = scripted_manifest(SCRIPTS, videos_per_activity=5, seed=0)
    manifest_dir = write_manifest(manifest, root / "manifest")
    store = write_store(manifest, root / "features.zarr", SyntheticFeatures(dim=16), seed=0)
    return root, manifest, manifest_dir, store


def test_dataset_targets_are_the_action_set_and_the_activity_index(tiny):
    _, manifest, _, store = tiny
    ds = CarDataset(store, manifest, ["lunch-00", "dinner-03"])
    batch = ds.collate([ds[0], ds[1]])
    assert manifest.classes == ("a", "b", "c", "d", "e", "f")
    assert batch["video_labels"].tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]]
    assert batch["activity"].tolist() == [1, 2]  # meta.activities: breakfast, lunch, dinner
    assert batch["features"].shape[0] == 2 and batch["mask"].sum() < batch["mask"].numel()
    # a video without an activity (a test split may lack them) gives None, not a guess
    bare = Manifest(manifest.meta, tuple(replace(v, activity=None) for v in manifest.videos))
    ds = CarDataset(store, bare, ["lunch-00"])
    assert ds[0].targets["activity"] is None and ds.collate([ds[0]])["activity"] is None


def test_sample_steps_spreads_uniformly_and_never_picks_padding():
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, :12], mask[1, :6], mask[2, :2] = True, True, True
    centres = sample_steps(mask, 4, jitter=False)
    assert centres.tolist() == [[1, 4, 7, 10], [0, 2, 3, 5], [0, 0, 1, 1]]
    torch.manual_seed(0)
    for _ in range(20):
        drawn = sample_steps(mask, 4, jitter=True)
        lengths = mask.sum(1, keepdim=True)
        assert (drawn < lengths).all() and (drawn.diff(dim=1) >= 0).all()
        # the i-th pick is a clip that overlaps the i-th of 4 equal bins [i L/4, (i+1) L/4)
        i = torch.arange(4)
        assert (drawn >= torch.floor(i * lengths / 4)).all()
        assert (drawn <= torch.ceil((i + 1) * lengths / 4) - 1).all()


def build(name: str, **extra):
    overrides = dict(item.split(".", 1)[1].split("=") for item in SMALL[name])
    kwargs = {k: int(v) for k, v in overrides.items()}
    return METHODS[name].build(feature_dim=16, num_classes=6, num_activities=3,
                               **kwargs, **extra)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_backward_every_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    model = build(name)
    mask = torch.ones(4, 40, dtype=torch.bool)
    mask[1, 25:], mask[2, 9:] = False, False  # one video shorter than the sampled length
    batch = {"features": torch.randn(4, 40, 16), "mask": mask,
             "video_labels": torch.tensor([[1.0, 0, 1, 0, 0, 0]] * 4),
             "activity": torch.tensor([0, 1, 2, 0])}
    loss, terms = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and {"loss_actions", "loss_activity"} <= set(terms)
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname
    actions, activity = model.eval().classify(batch["features"], mask)
    assert actions.shape == (4, 6) and activity.shape == (4, 3)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_padding_does_not_change_a_videos_scores(name):
    """Evaluation scores of a video are the same alone and padded in a batch with a longer one
    (whatever the padded steps hold)."""
    torch.manual_seed(1)
    model = build(name).eval()
    short, long_ = torch.randn(1, 23, 16), torch.randn(1, 50, 16)
    alone = model.classify(short, torch.ones(1, 23, dtype=torch.bool))
    features = torch.full((2, 50, 16), 7.0)
    features[0, :23], features[1] = short[0], long_[0]
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[0, :23], mask[1] = True, True
    batched = model.classify(features, mask)
    for a, b in zip(alone, batched):
        assert torch.allclose(a[0], b[0], atol=1e-5)


def test_car_metrics_match_evaluate_cls_and_count_activities(tiny, tmp_path):
    _, manifest, manifest_dir, store = tiny
    test = [v for v in manifest.videos if v.split == "test"]
    rng = np.random.default_rng(0)
    predictions = {v.video_id: CarPrediction(rng.normal(size=6), np.eye(3)[i % 3])
                   for i, v in enumerate(test)}
    ds = CarDataset(store, manifest, [v.video_id for v in test])
    metrics = car_metrics(predictions, ds.videos, ds.classes, manifest.meta.activities)
    out = TASK.write(predictions, ds, tmp_path / "sub.txt", source="test")
    on_file = evaluate_files(manifest_dir, out, subset="test")
    assert metrics["mAP"] == pytest.approx(on_file["mAP"])
    assert metrics["mAP_nanmean"] == pytest.approx(on_file["mAP_nanmean"])
    truth = [manifest.meta.activities.index(v.activity) for v in test]
    assert metrics["activity_acc"] == pytest.approx(np.mean([i % 3 == t for i, t in
                                                             enumerate(truth)]))
    activity = read_submission(activity_path(out), 3)
    assert set(activity) == set(predictions)
    assert np.allclose(activity[test[0].video_id], np.eye(3)[0])


def test_a_class_without_positives_leaves_the_selection_metric_finite():
    videos = [VideoRecord(f"v{i}", None, "val", 10.0, 10.0, 100, labels, activity="x")
              for i, labels in enumerate([("a",), ("a", "b"), ("b",)])]
    predictions = {"v0": CarPrediction(np.array([2.0, 0.0, 1.0]), np.array([1.0])),
                   "v1": CarPrediction(np.array([1.0, 1.0, 0.0]), np.array([1.0])),
                   "v2": CarPrediction(np.array([0.0, 2.0, 3.0]), np.array([1.0]))}
    metrics = car_metrics(predictions, videos, ("a", "b", "c"), ("x",))
    assert math.isnan(metrics["mAP"])  # Charades semantics: class c has no positive
    assert metrics[TASK.metric] == pytest.approx(1.0)  # a and b are ranked perfectly
    assert metrics["ap_per_class"] == [1.0, 1.0, None] and metrics["activity_acc"] == 1.0


@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_predict_evaluate(tiny, method):
    root, manifest, manifest_dir, store = tiny
    run = root / f"run_{method}"
    results = train_run(task="car", method=method, features=store, manifest=manifest_dir,
                        out=run, overrides=[*TINY, *SMALL[method]], progress=False)
    assert results["epochs"] == 2 and 0 <= results["val_mAP_nanmean"] <= 1
    out = predict_run(run, features=store, manifest=manifest_dir, out=root / f"{method}.txt",
                      progress=False)
    test = {v.video_id for v in manifest.videos if v.split == "test"}
    assert set(read_submission(out, 6)) == test
    assert set(read_submission(activity_path(out), 3)) == test
    on_file = evaluate_files(manifest_dir, out, subset="test")
    direct = evaluate_run(run, features=store, manifest=manifest_dir, split="test")
    assert direct["mAP"] == pytest.approx(on_file["mAP"])
    assert set(direct) >= set(TASK.headline)


def order_manifest(seed: int) -> Manifest:
    """Two activities with the same actions in opposite order (and two more that differ in
    their actions): the activity of the first two is in the order only."""
    return scripted_manifest({"ab": ["a", "b"], "ba": ["b", "a"], "cd": ["c", "d"],
                              "dc": ["d", "c"]}, videos_per_activity=14, seed=seed,
                             splits=(0.58, 0.14))


@pytest.fixture(scope="module")
def ordered(tmp_path_factory):
    root = tmp_path_factory.mktemp("car_order")
    manifest = order_manifest(seed=3)
    manifest_dir = write_manifest(manifest, root / "manifest")
    store = write_store(manifest, root / "features.zarr",
                        SyntheticFeatures(dim=16, noise=0.1, confusion=0.0), seed=3)
    return root, manifest, manifest_dir, store


LEARN = {"mlp": ["train.epochs=40", "train.lr=0.01", "train.batch_size=8"],
         "timeception": ["train.epochs=40", "train.lr=0.01", "train.batch_size=8",
                         "timeception.dropout=0.0", "timeception.dropout_hidden=0.0"],
         "ghrm": ["train.epochs=80", "train.lr=0.003", "train.batch_size=8",
                  "ghrm.dropout_head=0.0", "ghrm.dropout_hidden=0.0"]}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_learns(ordered, method):
    """Every method ranks the unit actions (same set for 'ab' and 'ba') nearly perfectly and
    tells the activities with different actions apart; the temporal models also tell 'ab' from
    'ba', which a mean over time (the MLP) cannot: it stays at chance there."""
    root, manifest, manifest_dir, store = ordered
    run = root / method
    train_run(task="car", method=method, features=store, manifest=manifest_dir, out=run,
              overrides=[*LEARN[method], *SMALL[method]], progress=False)
    # the last epoch: validation's mAP saturates at 1 long before the activities are learnt
    metrics = evaluate_run(run, features=store, manifest=manifest_dir, split="test",
                           checkpoint="last")
    assert metrics["mAP"] > 0.95
    pred = evaluate_predictions(run, store, manifest_dir)
    test = [v for v in manifest.videos if v.split == "test"]
    by_set = np.mean([pred[v.video_id] in pair(v.activity) for v in test])
    order = np.mean([pred[v.video_id] == v.activity for v in test])
    assert by_set > 0.9, (by_set, order)
    if method == "mlp":
        assert order < 0.7, order
    else:
        assert order > 0.85, order


def pair(activity: str) -> tuple[str, str]:
    return (activity, activity[::-1])


def evaluate_predictions(run, store, manifest_dir) -> dict[str, str]:
    _, _, dataset, predictions = run_predictions(run, features=store, manifest=manifest_dir,
                                                 checkpoint="last", progress=False)
    names = dataset.manifest.meta.activities
    return {video: names[int(np.argmax(p.activity))] for video, p in predictions.items()}


def test_cli_train_predict_evaluate_and_missing_activities(tiny, tmp_path):
    from pipelines.main import cli

    _, manifest, manifest_dir, store = tiny
    run = tmp_path / "cli"
    args = ["downstream", "train", "car", "--method", "mlp", "--features", str(store),
            "--manifest", str(manifest_dir), "--out", str(run), "--no-progress"]
    for item in [*TINY, *SMALL["mlp"]]:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("car mlp: best val mAP_nanmean")
    pred = tmp_path / "pred" / "test.txt"
    result = CliRunner().invoke(cli, ["downstream", "predict", str(run), "--features",
                                      str(store), "--manifest", str(manifest_dir), "--out",
                                      str(pred), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert activity_path(pred).exists()
    result = CliRunner().invoke(cli, ["downstream", "evaluate", "cls", "-g", str(manifest_dir),
                                      "-p", str(pred), "--subset", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert '"mAP"' in result.output and '"num_videos": 3' in result.output
    # A manifest without activities: one line naming the videos, exit 1, no run folder.
    meta = replace(manifest.meta, activities=())
    bare = Manifest(meta, tuple(replace(v, activity=None) for v in manifest.videos))
    bare_dir = write_manifest(bare, tmp_path / "bare")
    args = [a if a != str(manifest_dir) else str(bare_dir) for a in args]
    args[args.index(str(run))] = str(tmp_path / "bare_run")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "have no activity" in result.output and "breakfast-00" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bare_run").exists()
    # Without unit-action labels either (no segments, no labels): refused the same way.
    unlabelled = Manifest(manifest.meta, tuple(replace(v, labels=(), segments=None)
                                               for v in manifest.videos))
    with pytest.raises(DataError, match="have no labels"):
        train_run(task="car", method="mlp", features=store,
                  manifest=write_manifest(unlabelled, tmp_path / "unlabelled"),
                  out=tmp_path / "r2", overrides=TINY, progress=False)
    assert not (tmp_path / "r2").exists()
