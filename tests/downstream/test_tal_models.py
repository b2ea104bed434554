"""Every registered method through forward and backward on tiny inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from downstream.tal import METHODS
from downstream.tasks import get_task
from downstream.training.config import load_run_config

B, T, D, K = 2, 24, 8, 3


def tiny_batch() -> dict:
    torch.manual_seed(0)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 18:] = False
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    points = torch.zeros(B, T, K)
    points[0, 5, 0] = points[0, 15, 0] = 1
    points[1, 3, 1] = points[1, 12, 2] = 1
    return {"features": torch.randn(B, T, D) * mask[..., None], "mask": mask,
            "video_labels": labels, "point_labels": points, "snippet_labels": None,
            "video_id": ["x", "y"], "offset": [0, 0], "timestamps": [None, None]}


def build(name: str):
    model = METHODS[name].build(feature_dim=D, num_classes=K, hidden=16, dropout=0.0)
    return model


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = build(name)
    batch = tiny_batch()
    if name == "rskp":
        model.memory_warmup_epochs = 0
        model.start_epoch(0, None)
        model.train()
        model.training_loss(batch)  # fills the memory so that the inter-video branch runs
        model.zero_grad()
    if name == "lacp":
        model.search_start_epoch = 0
        model.start_epoch(0, lambda: [batch])  # optimal sequences for both videos
        assert set(model.sequences) == {"x", "y"}
    model.train()
    loss, terms = model.training_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(np.isfinite(v) for v in terms.values())
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {pname} has a non-finite gradient"
    if name == "lacp":
        assert terms["loss_score"] > 0 and terms["loss_feature"] > 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_localize_shapes_and_ranges(name):
    model = build(name).eval()
    batch = tiny_batch()
    with torch.no_grad():
        scores, cas, *_ = model.localize(batch["features"], batch["mask"])
    assert scores.shape == (B, K) and cas.shape == (B, T, K)
    assert torch.all((scores >= 0) & (scores <= 1)) and torch.all((cas >= 0) & (cas <= 1))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_padding_does_not_change_a_video(name):
    model = build(name).eval()
    batch = tiny_batch()
    with torch.no_grad():
        _, padded, *_ = model.localize(batch["features"][1:], batch["mask"][1:])
        _, alone, *_ = model.localize(batch["features"][1:, :18], batch["mask"][1:, :18])
    torch.testing.assert_close(padded[0, :18], alone[0], atol=1e-5, rtol=1e-4)


def test_rskp_memory_keeps_the_best_scored_snippets():
    model = build("rskp")
    mu = torch.randn(1, 8, 16)
    model.update_memory(mu, torch.tensor([[0.0, 1.0, 0.0]]))
    # the official memory starts at score 0 and only the video's class is written
    assert (model.memory_score[1] > 0).all() and (model.memory_score[0] == 0).all()
    probs = torch.softmax(model.class_logits(mu), -1)[0, :, 1]
    torch.testing.assert_close(model.memory_score[1], probs.topk(5).values)


def one_instance_videos(n: int, length: int, dim: int, classes: int,
                        generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``n`` videos ``(n, T, D)`` with one instance of 10 snippets of class ``i % classes``:
    features, labels ``(n, K)`` and the instance mask ``(n, T)``."""
    prototypes = torch.randn(classes, dim, generator=generator)
    actionness = torch.randn(dim, generator=generator)
    features = 0.5 * torch.randn(n, length, dim, generator=generator)
    features += 0.5 * torch.randn(n, 1, dim, generator=generator)  # per-video scene
    labels, inside = torch.zeros(n, classes), torch.zeros(n, length, dtype=torch.bool)
    for i in range(n):
        start = int(torch.randint(0, length - 12, (1,), generator=generator))
        inside[i, start:start + 10] = True
        features[i, inside[i]] += prototypes[i % classes] + actionness
        labels[i, i % classes] = 1
    return features.relu(), labels, inside


def test_rskp_defaults_learn_where_the_action_is():
    """With the shipped config (lr 1e-4, RSKP defaults), 200 steps make the attention a
    foreground score and the localized sequence of the video's class higher inside its
    instance than outside. The first RSKP had linear attention and classifier layers (logits
    near 0, so the attention got almost no gradient) plus a "(1 - attention) is background"
    loss: its attention stayed flat or came out inverted, the sequence had no contrast, and on
    the demo whole-video proposals won (mAP@0.5 ~ 0)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    config = load_run_config(get_task("tal"), "rskp")
    length, dim, classes = 40, 32, 3
    features, labels, inside = one_instance_videos(32, length, dim, classes, generator)
    model = METHODS["rskp"].build(feature_dim=dim, num_classes=classes,
                                  **dataclasses.asdict(config.rskp))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr,
                                 weight_decay=config.train.weight_decay)
    mask = torch.ones(8, length, dtype=torch.bool)
    model.train()
    for _ in range(200):
        pick = torch.randint(0, len(features), (8,), generator=generator)
        loss, _ = model.training_loss({"features": features[pick], "mask": mask,
                                       "video_labels": labels[pick]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    every = torch.ones(len(features), length, dtype=torch.bool)
    with torch.no_grad():
        attention = model(features, every)["main"]["att"]
        _, cas = model.localize(features, every)
    own = (cas * labels[:, None, :]).sum(-1)  # (N, T) sequence of each video's class
    assert attention[inside].mean() > attention[~inside].mean() + 0.1
    assert own[inside].mean() > own[~inside].mean() + 0.1
