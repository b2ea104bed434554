"""D3G: dynamic Gaussian prior based grounding (Li et al., "D3G: Exploring Gaussian Prior for
Temporal Sentence Grounding with Glance Annotation", ICCV 2023). Glance supervision: one
timestamp inside each sentence's moment; its boundaries are never read.

From the paper and the official code (solicucu/D3G: ``d3g/modeling/d3g/{d3g,common,loss}.py``,
``d3g/data/datasets/utils.py``, ``configs/pool_charades_16x16_k5l8.yaml``), Charades-STA settings
as defaults:

* the video side is MMN's moment map (:mod:`downstream.tsg.moment_map`: 32 -> 16 positions,
  hidden 512, 8 layers of 5 x 5, joint space 256) with one contrastive head; the sentence side
  LayerNorm and one linear head; cosine similarities in the joint space;
* glance index ``g = round(glance / duration * (N - 1))``; the cells that hold it (i <= g <= j)
  are the glance's candidates;
* Gaussian prior (sigma 0.3 on positions spread over [-1, 1], centred at ``2 g / N - 1``,
  peak 1); a cell (i, j) weighs the mean of the prior at i, at (i + j + 1) // 2 and at j + 1
  (clamped to N - 1);
* semantic alignment group contrastive learning (SA-GCL): the positives of a sentence are the
  top-k (10) candidate cells by ``cos * prior``, each weighted by its prior; the other candidate
  cells are left out of the denominator; negatives are its video's non-candidate cells and every
  cell of the other videos; tau 0.1; loss ``-mean(w log(exp(s+/tau) / sum exp(s/tau)))``;
* dynamic Gaussian prior adjustment (DGA, on for Charades-STA): per sentence a counter over the
  N positions, -1 outside a window of +-5 positions around the glance, 0 inside, 3 at the glance;
  each step the cosine of the pooled position features with the glance position's (momentum 0.7
  after a sentence's first visit) adds 1 to every in-window position reaching 0.9 and takes 1
  from every counted position below it; the prior is the similarity-weighted mean of Gaussians
  centred at every position counted at least once;
* only SA-GCL trains (D3G builds an IoU loss but never calls it); AdamW, lr 1e-4, betas
  (0.9, 0.99), weight decay 1e-5, batch 48, 18 epochs, lr x 0.1 after epochs 8 and 13, gradient
  norm clipped at 5; batches of 48 videos with all their sentences, as MMN's
  (``data.batches: by_video``); inference ranks the cells by cosine alone, NMS at 0.5.

Deliberate differences and interpretations:

* text: as MMN (:mod:`downstream.tsg.mmn`): a learned GRU stands in for DistilBERT (not
  available offline); ``text_encoder: minilm`` for the frozen packaged MiniLM.
* the DGA memory (counters and similarities per sentence) is kept with the weights' extra
  state, so a resumed run continues it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from downstream.task import Method
from downstream.tsg.base import Moment, TsgModel, resample_clips, video_groups
from downstream.tsg.moment_map import MomentMap, check_geometry, ranked_cells
from downstream.tsg.text import Vocabulary, build_sentence_encoder


@dataclass(frozen=True)
class D3gConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "dga_window", "hidden", "joint_dim", "kernel_size", "num_clips", "num_layers",
        "num_pre_clips", "pool_kernel", "pooling_counts", "predictor_hidden", "sigma", "tau",
        "text_hidden", "topk", "word_dim"})
    text_encoder: Literal["gru", "minilm"] = "gru"  # see downstream.tsg.text
    word_dim: int = 300  # learned word embeddings (GloVe's width); gru only
    text_hidden: int = 256  # GRU width per direction; gru only
    num_pre_clips: int = 32  # INPUT.NUM_PRE_CLIPS
    num_clips: int = 16  # N: map size
    pool_kernel: int = 2  # FEATPOOL.KERNEL_SIZE
    pooling_counts: tuple[int, ...] = (15,)  # FEAT2D.POOLING_COUNTS
    hidden: int = 512  # FEATPOOL.HIDDEN_SIZE
    predictor_hidden: int = 512  # PREDICTOR.HIDDEN_SIZE
    kernel_size: int = 5  # PREDICTOR.KERNEL_SIZE
    num_layers: int = 8  # PREDICTOR.NUM_STACK_LAYERS
    joint_dim: int = 256  # JOINT_SPACE_SIZE
    sigma: float = 0.3  # SOLVER.SIGMA: Gaussian width on [-1, 1]
    topk: int = 10  # SOLVER.TOPK: positive cells per sentence
    tau: float = 0.1  # temperature of SA-GCL
    use_dga: bool = True  # SOLVER.USE_DGA
    dga_window: int = 5  # SOLVER.WINDOW: positions around the glance that may count
    dga_thresh: float = 0.9  # SOLVER.THRESH: similarity that counts a position
    dga_momentum: float = 0.7  # weight of the new similarity after a sentence's first visit
    dga_init_count: int = 3  # the glance position's initial count
    dga_min_count: int = 1  # positions counted at least this often centre a Gaussian

    def __post_init__(self) -> None:
        check_geometry(num_pre_clips=self.num_pre_clips, num_clips=self.num_clips,
                       pool_kernel=self.pool_kernel, pooling_counts=self.pooling_counts,
                       kernel_size=self.kernel_size, num_layers=self.num_layers)


def glance_index(glance: torch.Tensor, duration: torch.Tensor, num_clips: int) -> torch.Tensor:
    """``(B,)`` map position of each glance: ``round(glance / duration * (N - 1))``."""
    return torch.round(glance / duration * (num_clips - 1)).long().clamp(0, num_clips - 1)


def glance_cells(index: torch.Tensor, num_clips: int) -> torch.Tensor:
    """``(B, N, N)`` bool: the cells (i, j) with i <= g <= j."""
    pos = torch.arange(num_clips, device=index.device)
    g = index[:, None, None]
    return (pos[None, :, None] <= g) & (pos[None, None, :] >= g)


def gaussians(centres: torch.Tensor, num_clips: int, sigma: float) -> torch.Tensor:
    """``(..., N)`` Gaussians over ``linspace(-1, 1, N)`` centred at ``centres (...)`` (already in
    [-1, 1]), peak 1."""
    x = torch.linspace(-1, 1, num_clips, device=centres.device)
    weight = torch.exp(-(x - centres[..., None]) ** 2 / (2 * sigma**2)) / (
        math.sqrt(2 * math.pi) * sigma)
    return weight / weight.max(dim=-1, keepdim=True).values


def cell_prior(weight: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` position prior -> ``(B, N, N)``: cell (i, j) is the mean of the prior at i, at
    ``(i + j + 1) // 2`` and at ``min(j + 1, N - 1)``."""
    n = weight.shape[-1]
    i = torch.arange(n, device=weight.device)[:, None].expand(n, n)
    j = torch.arange(n, device=weight.device)[None, :].expand(n, n)
    mid = torch.div(i + j + 1, 2, rounding_mode="floor").clamp(max=n - 1)
    end = (j + 1).clamp(max=n - 1)
    return (weight[:, i] + weight[:, mid] + weight[:, end]) / 3


def group_contrastive_loss(cells: torch.Tensor, sentences: torch.Tensor, video: torch.Tensor,
                           candidates: torch.Tensor, prior: torch.Tensor, *, topk: int,
                           tau: float) -> torch.Tensor:
    """SA-GCL. ``cells (V, C, P)``, ``sentences (B, C)`` L2-normalized, ``video (B,)``,
    ``candidates (B, P)`` bool (cells holding the glance), ``prior (B, P)``."""
    sims = torch.einsum("bc,vcp->bvp", sentences, cells)  # (B, V, P)
    rows = torch.arange(len(video), device=cells.device)
    own = sims[rows, video]  # (B, P)
    candidates = candidates.float()
    joint = own * candidates * (prior * candidates)
    top = joint.topk(topk, dim=1).indices  # (B, K)
    valid = torch.ones_like(sims)
    valid[rows, video] = (1 - candidates).scatter(1, top, 1.0)  # drop the other candidates
    denominator = ((sims / tau).exp() * valid).sum(dim=(1, 2))  # (B,)
    positive = (own.gather(1, top) / tau).exp()  # (B, K)
    weight = prior.gather(1, top)
    return -(weight * torch.log(positive / denominator[:, None])).mean()


class D3g(TsgModel):
    def __init__(self, *, feature_dim: int, vocab: list[str], options: D3gConfig):
        super().__init__()
        o = self.options = options
        self.video = MomentMap(feature_dim=feature_dim, num_pre_clips=o.num_pre_clips,
                               num_clips=o.num_clips, pool_kernel=o.pool_kernel,
                               pooling_counts=o.pooling_counts, hidden=o.hidden,
                               predictor_hidden=o.predictor_hidden, kernel_size=o.kernel_size,
                               num_layers=o.num_layers, joint_dim=o.joint_dim, heads=1)
        self.text = build_sentence_encoder(o.text_encoder, Vocabulary(tuple(vocab)),
                                           word_dim=o.word_dim, hidden=o.text_hidden)
        self.text_norm = nn.LayerNorm(self.text.out_dim)
        self.text_head = nn.Linear(self.text.out_dim, o.joint_dim)
        # DGA memory, by item key (video id, sentence index): (count (N,), similarity (N,))
        self.memory: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}

    def get_extra_state(self) -> Any:
        return {"memory": self.memory}

    def set_extra_state(self, state: Any) -> None:
        self.memory = dict(state["memory"])

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """(pooled positions ``(V, H, N)``, map ``(V, C, N, N)``, sentences ``(B, C)``,
        video ``(B,)``)."""
        first, video = video_groups(batch["video_id"])
        clips = F.normalize(batch["features"][first], dim=-1)
        clips = resample_clips(clips, batch["mask"][first], self.options.num_pre_clips)
        pooled, (map2d,) = self.video(clips)
        sentences = self.text_head(self.text_norm(self.text(batch["text"])))
        return pooled, map2d, sentences, video.to(map2d.device)

    @torch.no_grad()
    def dynamic_prior(self, keys: list[Any], pooled: torch.Tensor, video: torch.Tensor,
                      index: torch.Tensor) -> torch.Tensor:
        """DGA: update each sentence's counters, return its ``(B, N)`` position prior."""
        o, n = self.options, self.options.num_clips
        features = F.normalize(pooled, dim=1)[video]  # (B, H, N)
        rows = torch.arange(len(keys), device=pooled.device)
        sims = torch.einsum("bh,bhn->bn", features[rows, :, index], features)  # (B, N)
        counts = []
        for b, key in enumerate(keys):
            if key in self.memory:
                count, previous = (t.to(sims.device) for t in self.memory[key])
                sims[b] = o.dga_momentum * sims[b] + (1 - o.dga_momentum) * previous
            else:
                count = torch.full((n,), -1.0, device=sims.device)
                g = int(index[b])
                count[max(g - o.dga_window, 0): g + o.dga_window + 1] = 0
                count[g] = o.dga_init_count
            above = sims[b] >= o.dga_thresh
            count = count + ((count >= 0) & above).float() - ((count >= 1) & ~above).float()
            self.memory[key] = (count.cpu(), sims[b].cpu())
            counts.append(count)
        counted = (torch.stack(counts) >= o.dga_min_count).float()  # (B, N)
        centres = torch.arange(n, device=sims.device) / n * 2 - 1
        bumps = gaussians(centres, n, o.sigma)  # (N centres, N positions)
        weighted = (counted * sims)[:, :, None] * bumps[None]  # (B, centres, positions)
        return weighted.sum(1) / counted.sum(1, keepdim=True)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.options
        pooled, map2d, sentences, video = self.encode(batch)
        index = glance_index(batch["glance"], batch["duration"], o.num_clips)
        if o.use_dga:
            weight = self.dynamic_prior(list(batch["key"]), pooled.detach(), video, index)
        else:
            weight = gaussians(index / o.num_clips * 2 - 1, o.num_clips, o.sigma)
        mask2d = self.video.mask2d
        loss = group_contrastive_loss(
            self.video.cell_features(map2d), F.normalize(sentences, dim=1), video,
            glance_cells(index, o.num_clips)[:, mask2d], cell_prior(weight)[:, mask2d],
            topk=o.topk, tau=o.tau)
        return loss, {"loss_gcl": loss.item()}

    @torch.no_grad()
    def ground(self, batch: dict[str, Any]) -> list[list[Moment]]:
        _, map2d, sentences, video = self.encode(batch)
        cos = torch.einsum("bc,bcij->bij", F.normalize(sentences, dim=1),
                           F.normalize(map2d[video], dim=1))
        return [ranked_cells(cos[b], self.video.mask2d, float(batch["duration"][b]))
                for b in range(len(cos))]


def build(*, feature_dim: int, vocab: list[str], **options: Any) -> D3g:
    """D3G on ``feature_dim`` clip features with the vocabulary ``vocab``; ``options``: the
    fields of :class:`D3gConfig`."""
    return D3g(feature_dim=feature_dim, vocab=vocab, options=D3gConfig(**options))


METHOD = Method(
    name="d3g", config=D3gConfig, build=build, needs=("sentences", "glances"),
    summary="D3G, Gaussian prior around a glance (Li et al., ICCV 2023); glance: one timestamp",
    defaults={"train.optimizer": "adamw", "train.lr": 1e-4, "train.adam_beta2": 0.99,
              "train.weight_decay": 1e-5, "train.batch_size": 48, "train.epochs": 18,
              "train.lr_milestones": [8, 13], "train.lr_gamma": 0.1, "train.grad_clip": 5.0,
              "data.max_snippets": 0, "data.batches": "by_video"})
