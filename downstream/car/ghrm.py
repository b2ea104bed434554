"""GHRM: graph-based high-order relation modelling (Zhou, Lin, Li and Zheng, "Graph-Based
High-Order Relation Modeling for Long-Term Action Recognition", CVPR 2021).

The paper's idea: a long activity involves several kinds of *basic relations* between its
parts (objects, motions, sub-actions); they interact over the long range (*high-order
relations*). GHRM models each basic relation as a graph whose nodes are the video's segments,
and builds each relation's graph with the information of all the other relations, in a local
temporal branch (Temporal-GHRM, neighbouring segments) and a global semantic branch
(Semantic-GHRM, segments alike in content, wherever they are).

There is no public code. The paper could not be read in this project's sources either, so this
module builds the idea as summarised above; every choice below is this project's
interpretation, listed so that a reader can compare it with the paper:

1. Nodes: the clip sequence is sampled to ``num_steps`` segments as Timeception's
   (``base.sample_steps``: random clip per bin in training, bin centres in evaluation), and
   projected to ``channels`` by a linear layer. GHRM is compared with Timeception on the
   same I3D features, so the sampling and the classifier head are Timeception's.
2. Basic relations: ``relations`` (K) relation-specific node embeddings, one linear projection
   of the nodes cut into K parts of ``channels / K``: ``h_k (B, N, c)``.
3. High-order interaction: at every node the K relations form a fully connected graph; each
   relation attends over all of them (similarity ``sim``, see 4; softmax over the K
   relations) and adds the result: ``h~_k = h_k + sum_l softmax_l(sim(q(h_k), k(h_l)))
   v(h_l)``. The edges of relation k's segment graph are then computed from ``h~_k``, i.e.
   with the information of every other relation.
4. Relation graphs, edges from content: ``sim(theta_k(h~_k,i), phi_k(h~_k,j))``, softmax
   over the neighbours j of segment i (per-relation linear maps theta, phi, g; one set per
   branch). Every similarity here, ``sim(q, k)``, is the cosine times ``sqrt(c)`` (bounded
   logits): with the scaled dot product the first Breakfast-like run diverged after ~30 epochs
   (gradient spikes of 100x the median, then the same output for every video, even with
   gradient clipping); with the cosine, the 3-seed benchmark (``channels=128``, docs/stage2.md)
   trained on all three stores without collapse (test mAP 52-72, best epochs 92-176 of 200).
   Semantic-GHRM (global semantic relations): every segment is a neighbour; the message is
   ``sum_j A_k[i, j] g_k(h~_k,j)``.
   Temporal-GHRM (local temporal relations): the neighbours are the segments ``j = i + o``,
   ``|o| <= window``, inside the video; each offset o has its own map ``g_{k,o}`` and a learned
   score bias ``b_k[o]`` (the edge type is the temporal offset, as in a relational graph
   network), so that the local graph knows which neighbour comes first. Content similarity
   alone is blind to the order of time, and without it "a then b" and "b then a" look the same
   (a test checks that GHRM tells them apart).
   Each branch keeps the K relations separate.
5. Node update: the layer input and the K relations of both branches are concatenated and
   mapped back to ``channels`` by a two-layer MLP (ReLU between; it lets a segment combine its
   own content with its neighbours', e.g. "a here and b just after"), added to the input
   (residual, dropout). Layer norm comes first in each layer (pre-norm, and once more before
   pooling).
6. Hierarchy: ``layers`` such layers, each followed by temporal max pooling of size 2, as
   Timeception stacks its layers: the local graphs of later layers span longer stretches of the
   video. Without it (``pool=false``) a window of 2 linked too little of a video to see the
   order of its actions (a toy test: activity from the order of two actions stayed at chance).
7. Video representation: max over the segments, then Timeception's classifier head and the
   two-target loss (``base``).
8. Settings (not available from the paper here): K = 4 relations, 3 layers, 512 channels,
   temporal window 2 on each side, dropout 0.1 inside the layers; Adam at lr 1e-3 without
   weight decay, batch 20 (Timeception's) and 200 epochs. Timeception's lr 0.01 with Adam is
   not used: 1e-3 is the usual rate for attention layers; neither was tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from data_manifests.config import ConfigError
from downstream.car.base import CarModel, ClassifierHead, HeadsConfig, gather_steps, sample_steps
from downstream.task import Method


@dataclass(frozen=True)
class GhrmConfig(HeadsConfig):
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "channels", "hidden", "layers", "num_steps", "relations", "window"})
    num_steps: int = 64  # segments the clip sequence is sampled to (as Timeception)
    channels: int = 512  # node feature width
    relations: int = 4  # basic relations K (one graph each); must divide channels
    layers: int = 3  # stacked GHRM layers
    window: int = 2  # Temporal-GHRM: neighbours on each side a segment is linked to
    dropout: float = 0.1  # dropout on each layer's update
    pool: bool = True  # temporal max pooling by 2 after each layer (Timeception's hierarchy)
    hidden: int = 512  # width of the classifier's dense layer (Timeception's head)
    dropout_head: float = 0.5  # dropout before the classifier's dense layer
    dropout_hidden: float = 0.25  # dropout before the output layers
    train_sampling: Literal["random", "uniform"] = "random"  # one clip per bin: random | centre


def semantic_graph(h: torch.Tensor, theta: nn.Module, phi: nn.Module, g: nn.Module,
                   relations: int) -> torch.Tensor:
    """Semantic-GHRM over K relation graphs: ``h (B, C, N)`` (K blocks of c channels) ->
    ``(B, C, N)``, block k = ``A_k g_k(h_k)``, ``A_k = softmax_j(sim(theta_k(h_k)_i,
    phi_k(h_k)_j))`` over all segments j (``sim``: cosine x sqrt(c), module docstring)."""
    b, c_all, n = h.shape
    c = c_all // relations
    q = F.normalize(theta(h).view(b, relations, c, n), dim=2)
    k = F.normalize(phi(h).view(b, relations, c, n), dim=2)
    v = g(h).view(b, relations, c, n)
    edges = (torch.einsum("bkci,bkcj->bkij", q, k) * math.sqrt(c)).softmax(dim=-1)  # (B,K,N,N)
    return torch.einsum("bkij,bkcj->bkci", edges, v).reshape(b, c_all, n)


def temporal_graph(h: torch.Tensor, theta: nn.Module, phi: nn.Module, values: nn.Module,
                   bias: torch.Tensor, relations: int, window: int) -> torch.Tensor:
    """Temporal-GHRM over K relation graphs: ``h (B, C, N)`` -> ``(B, C, N)``, block k at
    segment i = ``sum_o A_k[i, o] g_{k,o}(h_k)_{i+o}`` over the offsets ``|o| <= window`` that
    stay inside the sequence, ``A_k[i, o] = softmax_o(sim(theta_k(h_k)_i, phi_k(h_k)_{i+o})
    + bias[k, o])``. ``values`` maps C to ``(2 window + 1) C`` channels (group k: the
    offsets' maps of relation k), ``bias (K, 2 window + 1)``."""
    b, c_all, n = h.shape
    c, span = c_all // relations, 2 * window + 1
    q = F.normalize(theta(h).view(b, relations, 1, c, n), dim=3)
    k = F.normalize(F.pad(phi(h), (window, window)).view(b, relations, c, n + 2 * window), dim=2)
    v = F.pad(values(h), (window, window)).view(b, relations, span, c, n + 2 * window)
    keys = torch.stack([k[..., o:o + n] for o in range(span)], dim=2)  # (B, K, span, c, N)
    vals = torch.stack([v[:, :, o, :, o:o + n] for o in range(span)], dim=2)
    scores = (q * keys).sum(dim=3) * math.sqrt(c) + bias[None, :, :, None]  # (B, K, span, N)
    where = torch.arange(n, device=h.device)[None, :] + torch.arange(span, device=h.device)[
        :, None] - window  # (span, N): the neighbour's index
    scores = scores.masked_fill((where < 0) | (where >= n), float("-inf"))
    edges = scores.softmax(dim=2)
    return (edges[:, :, :, None] * vals).sum(dim=2).reshape(b, c_all, n)


class GhrmLayer(nn.Module):
    def __init__(self, channels: int, relations: int, window: int, dropout: float):
        super().__init__()
        self.relations, self.window = relations, window
        c = channels // relations
        self.embed = nn.Linear(channels, channels)  # K relation-specific embeddings
        self.inter_q, self.inter_k, self.inter_v = (nn.Linear(c, c) for _ in range(3))

        def per_relation(maps: int = 1) -> nn.Module:  # linear maps per relation: grouped 1x1
            return nn.Conv1d(channels, maps * channels, 1, groups=relations)

        self.semantic = nn.ModuleList(per_relation() for _ in range(3))  # theta, phi, g
        span = 2 * window + 1
        self.temporal = nn.ModuleList([per_relation(), per_relation(), per_relation(span)])
        self.offset_bias = nn.Parameter(torch.zeros(relations, span))  # b_k[o]
        self.fuse = nn.Sequential(nn.Linear(3 * channels, channels), nn.ReLU(),
                                  nn.Linear(channels, channels))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(channels)

    def interact(self, h: torch.Tensor) -> torch.Tensor:
        """Interpretation 3: ``h (B, N, K, c)`` -> each relation plus what it takes from all."""
        q, k = F.normalize(self.inter_q(h), dim=-1), F.normalize(self.inter_k(h), dim=-1)
        weights = (torch.einsum("bnkc,bnlc->bnkl", q, k) * math.sqrt(h.shape[-1])).softmax(-1)
        v = self.inter_v(h)
        return h + torch.einsum("bnkl,bnlc->bnkc", weights, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N, C)`` -> ``(B, N, C)``."""
        b, n, channels = x.shape
        y = self.norm(x)  # pre-norm: the residual stream itself is never normalised
        h = self.embed(y).view(b, n, self.relations, channels // self.relations)
        h = self.interact(h).reshape(b, n, channels).transpose(1, 2)  # (B, C, N)
        local = temporal_graph(h, *self.temporal, self.offset_bias, self.relations, self.window)
        semantic = semantic_graph(h, *self.semantic, self.relations)
        update = self.fuse(torch.cat([y.transpose(1, 2), local, semantic],
                                     dim=1).transpose(1, 2))  # (B, N, C)
        return x + self.dropout(update)


class Ghrm(CarModel):
    def __init__(self, *, feature_dim: int, num_classes: int, num_activities: int,
                 num_steps: int, channels: int, relations: int, layers: int, window: int,
                 dropout: float, pool: bool, hidden: int, dropout_head: float,
                 dropout_hidden: float, train_sampling: str, action_weight: float, activity_weight: float):
        super().__init__()
        if channels % relations:
            raise ConfigError(f"ghrm.relations={relations} must divide ghrm.channels={channels}")
        self.num_steps, self.jitter = num_steps, train_sampling == "random"
        self.pool = pool
        self.action_weight, self.activity_weight = action_weight, activity_weight
        self.inp = nn.Linear(feature_dim, channels)
        self.out_norm = nn.LayerNorm(channels)
        self.layers = nn.ModuleList(GhrmLayer(channels, relations, window, dropout)
                                    for _ in range(layers))
        self.head = ClassifierHead(channels, num_classes, num_activities, hidden=hidden,
                                   dropout=dropout_head, dropout_hidden=dropout_hidden)

    def classify(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = sample_steps(mask, self.num_steps, jitter=self.training and self.jitter)
        x = self.inp(gather_steps(features, index))  # (B, N, C)
        for layer in self.layers:
            x = layer(x)  # (B, N_l, C)
            if self.pool:  # halve the sequence between layers, as Timeception
                x = F.max_pool1d(x.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
        return self.head(self.out_norm(x).amax(dim=1))


def build(*, feature_dim: int, num_classes: int, num_activities: int, num_steps: int = 64,
          channels: int = 512, relations: int = 4, layers: int = 3, window: int = 2,
          dropout: float = 0.1, pool: bool = True, hidden: int = 512, dropout_head: float = 0.5,
          dropout_hidden: float = 0.25, train_sampling: str = "random",
          action_weight: float = 1.0, activity_weight: float = 1.0) -> Ghrm:
    return Ghrm(feature_dim=feature_dim, num_classes=num_classes, num_activities=num_activities,
                num_steps=num_steps, channels=channels, relations=relations, layers=layers,
                window=window, dropout=dropout, pool=pool, hidden=hidden, dropout_head=dropout_head,
                dropout_hidden=dropout_hidden, train_sampling=train_sampling,
                action_weight=action_weight, activity_weight=activity_weight)


METHOD = Method(
    name="ghrm", config=GhrmConfig, build=build, needs=("labels", "activity"),
    summary="GHRM, graph-based high-order relation modelling (Zhou et al., CVPR 2021)",
    defaults={"train.lr": 1e-3, "train.weight_decay": 0.0, "train.batch_size": 20,
              "train.epochs": 200, "data.max_snippets": 0})
