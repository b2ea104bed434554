"""RSKP: representative snippet knowledge propagation (Huang, Wang, Li, "Weakly Supervised
Temporal Action Localization via Representative Snippet Knowledge Propagation", CVPR 2022).

As the official code has it (LeonHLJ/RSKP: model/main_branch.py, model/memory.py,
model/losses.py, processor.py, evaluation/eval.py, options.py), which is also the default:

* Embedding: a per-snippet 2048-wide linear layer + ReLU + dropout 0.6 (xavier init). The
  FAC-Net head, shared by three branches: class logits S = s cos(x_t, w_c) over K + 1 classes
  (background last), s = ``scale`` = 20; a foreground attention a_t = sigmoid(s cos(x_t,
  w_fg)) with w_fg initialised to -w_bg; a class-wise attention sigmoid(S_{t,c}). Both
  attentions, normalised over time, pool the *features*; the pooled features are classified
  by the same cosine classifier (softmax over classes): the class-agnostic pool against
  [y, 0] (foreground), the class-wise pools against [y, 1] (every untrimmed video has
  background), both normalised cross entropies, the latter at weight ``background_weight``
  0.2.
* Representative snippets: EM attention with 8 bases (xavier init), 2 iterations, lambda 5
  (Eq. 2-3); the bipartite random walk in closed form (Eq. 6), w = 0.5, gives the intra-video
  branch (mu^a).
* A memory of 5 representative snippets per class, ranked by the classifier's score of the
  class (Sec. 3.2). Before epoch ``memory_warmup_epochs`` (0-based; official 101, its
  ``epoch > 100``) it is neither used nor updated; then one eval-mode pass over the training
  videos fills it, every training step updates it, and the inter-video branch (mu^e, the
  slots of the video's classes, detached) joins the losses at weight ``memory_weight`` 0.5.
* Distillation (Eq. 7) at temperature ``kd_temperature`` 0.2: the main branch's snippet
  logits against the intra branch's (during warm-up) or ``0.2 S^e + 0.8 S^a`` logits (after),
  at weight ``alpha`` 1.0, ``alpha_after_warmup`` 0.5 after; TSCN's attention normalisation
  on the main branch at weight ``beta`` 0.1.
* Adam at 5e-5 (betas 0.9 / 0.99, weight decay 5e-4), whole videos, gradients of 10 videos
  *summed* per step (``batch_reduction: sum``), 200 epochs.
* Inference: video scores 0.6 main + 0.4 intra (class-agnostic pools), the activation
  sequence (0.6 softmax(S^o) + 0.4 softmax(S^a)) x a^o; post-processing at the snippet grid,
  thresholds 0.001 to 0.039, class threshold 0.1 (no fallback to the best class), runs of at
  least 2 snippets, inner minus outer (no video-score term), NMS at 0.5 of the candidate's
  own length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, topk_mean
from downstream.task import Method


@dataclass(frozen=True)
class RskpConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "em_iterations", "hidden", "kd_temperature", "kernel_size", "memory_slots", "num_bases",
        "scale", "topk_ratio"})
    hidden: int = 2048  # embedding width (official: 2048)
    kernel_size: int = 1  # temporal kernel of the embedding (official: 1, a linear layer)
    dropout: float = 0.6  # dropout after the embedding (official: 0.6)
    topk_ratio: int = 8  # k = T // topk_ratio of the attention normalisation loss
    num_bases: int = 8  # Gaussians of the EM attention (representative snippets per video)
    bases_init: Literal["xavier", "orthogonal"] = "xavier"  # official xavier; the paper argues
    em_iterations: int = 2  # EM iterations (Eq. 2-3)
    em_lambda: float = 5.0  # lambda of Eq. 2 (softmax sharpness)
    walk_w: float = 0.5  # w of the bipartite random walk (Eq. 4-6)
    memory_slots: int = 5  # representative snippets kept per class in the memory bank
    memory_warmup_epochs: int = 101  # epochs (0-based) before the memory is filled and used
    memory_weight: float = 0.5  # weight of the inter-video branch's classification losses
    background_weight: float = 0.2  # weight of the class-wise ([y, 1]) losses
    kd_temperature: float = 0.2  # temperature of student and teacher in the distillation
    kd_teacher_memory: float = 0.2  # share of the inter branch's logits in the teacher
    alpha: float = 1.0  # weight of the distillation loss during warm-up (Eq. 8)
    alpha_after_warmup: float = 0.5  # ... and after it (official: 0.5)
    beta: float = 0.1  # weight of the attention normalisation loss (Eq. 8)
    scale: float = 20.0  # temperature of the cosine-similarity logits and attention
    main_weight: float = 0.6  # inference: weight of the main branch (the intra one: 1 - this)
    # "sum": the loss of a batch is the sum of its videos' (the official code accumulates the
    # gradients of 10 videos per step); "mean": their mean.
    batch_reduction: Literal["sum", "mean"] = "sum"

    def __post_init__(self) -> None:
        if self.kd_temperature <= 0 or self.memory_slots < 1 or self.memory_warmup_epochs < 0:
            raise ValueError(f"rskp.kd_temperature={self.kd_temperature} must be > 0, "
                             f"rskp.memory_slots={self.memory_slots} >= 1 and "
                             f"rskp.memory_warmup_epochs={self.memory_warmup_epochs} >= 0")
        for key in ("main_weight", "kd_teacher_memory"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"rskp.{key}={getattr(self, key)} must lie in [0, 1]")


# ---------------------------------------------------------------------------------------------
# Pure functions (Eq. 2-7)


def affinity(features: torch.Tensor, bases: torch.Tensor, mask: torch.Tensor,
             lam: float) -> torch.Tensor:
    """Eq. 2: ``Z (B, T, n) = softmax_n(lam * norm(F) norm(mu)^T)``; padded rows are 0.

    ``features (B, T, H)``, ``bases (B, n, H)``, ``mask (B, T)`` bool.
    """
    logits = lam * torch.einsum("btd,bnd->btn", F.normalize(features, dim=-1),
                                F.normalize(bases, dim=-1))
    return torch.softmax(logits, dim=-1) * mask[..., None]


def column_normalise(z: torch.Tensor) -> torch.Tensor:
    """Norm_1 of Eq. 3: each basis' memberships ``(B, T, n)`` sum to 1 over the snippets."""
    return z / z.sum(dim=1, keepdim=True).clamp(min=1e-9)


def em_attention(features: torch.Tensor, init_bases: torch.Tensor, mask: torch.Tensor,
                 iterations: int, lam: float) -> torch.Tensor:
    """Eq. 2-3 iterated: representative snippets ``mu (B, n, H)`` of each video."""
    bases = init_bases
    for _ in range(iterations):
        z = affinity(features, bases, mask, lam)  # E step
        bases = torch.einsum("btn,btd->bnd", column_normalise(z), features)  # M step
    return bases


def bipartite_random_walk(features: torch.Tensor, bases: torch.Tensor, z: torch.Tensor,
                          w: float) -> torch.Tensor:
    """Eq. 6: ``F* = (1 - w) (I - w^2 Z Norm1(Z)^T)^{-1} (w Z mu + F)``, ``(B, T, H)``.

    The limit of alternating Eq. 4 and 5 (see :func:`bipartite_random_walk_iterative`).
    """
    length = features.shape[1]
    eye = torch.eye(length, dtype=features.dtype, device=features.device)
    system = eye - w**2 * torch.einsum("btn,bsn->bts", z, column_normalise(z))  # (B, T, T)
    rhs = w * torch.einsum("btn,bnd->btd", z, bases) + features
    return (1.0 - w) * torch.linalg.solve(system, rhs)


def bipartite_random_walk_iterative(features: torch.Tensor, bases: torch.Tensor,
                                    z: torch.Tensor, w: float, steps: int) -> torch.Tensor:
    """Eq. 4-5 unrolled ``steps`` times (the reference that Eq. 6 is the limit of)."""
    current = features
    for _ in range(steps):
        mu = w * torch.einsum("btn,btd->bnd", column_normalise(z), current) + (1 - w) * bases
        current = w * torch.einsum("btn,bnd->btd", z, mu) + (1 - w) * features
    return current


def cosine_logits(x: torch.Tensor, centers: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos(x_t, center_c)``: ``(..., H)`` and ``(C, H)`` -> ``(..., C)``."""
    return scale * F.normalize(x, dim=-1) @ F.normalize(centers, dim=-1).T


def normalised_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-sum_c (y_c / |y|) log softmax(logits)_c``, batch mean; ``(B, C)`` both."""
    weight = target / target.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return -(weight * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``-1/l sum_t T^f(t) . log T(t)`` over valid snippets, batch mean.

    ``student_logits (B, T, C)``, ``teacher_probs (B, T, C)`` (no gradient flows into it).
    """
    per_snippet = -(teacher_probs.detach() * torch.log_softmax(student_logits, dim=-1)).sum(-1)
    weight = mask.to(per_snippet.dtype)
    return ((per_snippet * weight).sum(1) / weight.sum(1).clamp(min=1)).mean()


def attention_normalisation_loss(attention: torch.Tensor, mask: torch.Tensor,
                                 ratio: int) -> torch.Tensor:
    """TSCN's attention normalisation: mean of the k lowest minus mean of the k highest
    attention values (k = T // ratio) per video; ``attention (B, T)`` in (0, 1)."""
    top = topk_mean(attention[..., None], mask, ratio)[:, 0]
    bottom = -topk_mean(-attention[..., None], mask, ratio)[:, 0]
    return (bottom - top).mean()


# ---------------------------------------------------------------------------------------------
# Model


class Rskp(TalModel):
    def __init__(self, *, feature_dim: int, num_classes: int, **options: Any):
        super().__init__()
        cfg = RskpConfig(**options)
        self.cfg, self.num_classes = cfg, num_classes
        self.embed = Embedding(feature_dim, cfg.hidden, cfg.kernel_size, cfg.dropout)
        nn.init.xavier_uniform_(self.embed.conv.weight)
        nn.init.zeros_(self.embed.conv.bias)
        self.class_centers = nn.Parameter(torch.empty(num_classes + 1, cfg.hidden))  # bg last
        nn.init.xavier_uniform_(self.class_centers)
        # class-agnostic foreground, initialised opposite to the background centre
        self.fg_center = nn.Parameter(-self.class_centers.detach()[-1:].clone())
        self.init_bases = nn.Parameter(torch.empty(cfg.num_bases, cfg.hidden))
        (nn.init.xavier_uniform_ if cfg.bases_init == "xavier" else nn.init.orthogonal_)(
            self.init_bases)
        self.register_buffer("memory", torch.zeros(num_classes, cfg.memory_slots, cfg.hidden))
        self.register_buffer("memory_score", torch.zeros(num_classes, cfg.memory_slots))
        self.use_memory = False

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        self.use_memory = epoch >= self.cfg.memory_warmup_epochs
        if epoch == self.cfg.memory_warmup_epochs:  # fill it once from every training video
            was_training = self.training
            self.eval()
            with torch.no_grad():
                for batch in train_batches():
                    out = self(batch["features"], batch["mask"])
                    self.update_memory(out["mu"], batch["video_labels"])
            self.train(was_training)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., H) -> (..., K + 1)``: the cosine classifier."""
        return cosine_logits(x, self.class_centers, self.cfg.scale)

    def head(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The shared classification head on ``x (B, T, H)``: snippet logits ``cas``, the
        foreground attention ``att``, and the logits of the two attention-pooled features."""
        scale = self.cfg.scale
        cas = self.class_logits(x)  # (B, T, K + 1)
        att = torch.sigmoid(cosine_logits(x, self.fg_center, scale)).squeeze(-1) * mask
        class_att = torch.sigmoid(cas) * mask[..., None]  # (B, T, K + 1)
        pooled = torch.einsum("bt,btd->bd", att / (att.sum(1, keepdim=True) + 1e-5), x)
        class_pooled = torch.einsum("btc,btd->bcd",
                                    class_att / (class_att.sum(1, keepdim=True) + 1e-5), x)
        centers = F.normalize(self.class_centers, dim=-1)  # (K + 1, H)
        class_wise = scale * (F.normalize(class_pooled, dim=-1) * centers).sum(-1)  # (B, K + 1)
        return {"att": att, "cas": cas, "ca_logits": self.class_logits(pooled),
                "cw_logits": class_wise}

    def forward(self, features: torch.Tensor, mask: torch.Tensor,
                video_labels: torch.Tensor | None = None) -> dict[str, Any]:
        cfg = self.cfg
        x = self.embed(features, mask)  # (B, T, H)
        init = self.init_bases[None].expand(x.shape[0], -1, -1)
        mu = em_attention(x, init, mask, cfg.em_iterations, cfg.em_lambda)  # (B, n, H)
        x_intra = bipartite_random_walk(x, mu, affinity(x, mu, mask, cfg.em_lambda), cfg.walk_w)
        out = {"x": x, "mu": mu, "main": self.head(x, mask), "intra": self.head(x_intra, mask)}
        if video_labels is not None and self.use_memory:
            out["inter"] = self.head(self._inter_features(x, mask, video_labels), mask)
        return out

    def _inter_features(self, x: torch.Tensor, mask: torch.Tensor,
                        video_labels: torch.Tensor) -> torch.Tensor:
        """F^e: propagation of the memory's snippets of the video's classes (one video at a
        time: their number differs)."""
        rows = []
        for b in range(x.shape[0]):
            classes = torch.nonzero(video_labels[b] > 0).squeeze(1)
            bases = self.memory[classes].reshape(1, -1, x.shape[-1])  # (1, |Y| s, H), no grad
            z = affinity(x[b:b + 1], bases, mask[b:b + 1], self.cfg.em_lambda)
            rows.append(bipartite_random_walk(x[b:b + 1], bases, z, self.cfg.walk_w)[0])
        return torch.stack(rows)

    @torch.no_grad()
    def update_memory(self, mu: torch.Tensor, video_labels: torch.Tensor) -> None:
        """Keep, per class, the ``s`` representative snippets with the highest class score."""
        probs = torch.softmax(self.class_logits(mu), dim=-1)  # (B, n, K + 1)
        slots = self.memory.shape[1]
        for b, c in torch.nonzero(video_labels > 0).tolist():
            scores = torch.cat([self.memory_score[c], probs[b, :, c]])
            feats = torch.cat([self.memory[c], mu[b].detach()])
            best = scores.topk(slots).indices
            self.memory_score[c] = scores[best]
            self.memory[c] = feats[best]

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        mask, labels = batch["mask"], batch["video_labels"]
        out = self(batch["features"], mask, labels)
        ones = torch.ones_like(labels[:, :1])
        target_fg = torch.cat([labels, 0 * ones], dim=1)  # the foreground pool: no background
        target_all = torch.cat([labels, ones], dim=1)  # every untrimmed video has background
        weights = {"main": 1.0, "intra": 1.0, "inter": cfg.memory_weight}
        loss_fore = sum(w * normalised_cross_entropy(out[br]["ca_logits"], target_fg)
                        for br, w in weights.items() if br in out)
        loss_back = sum(w * normalised_cross_entropy(out[br]["cw_logits"], target_all)
                        for br, w in weights.items() if br in out)
        teacher = out["intra"]["cas"]
        if "inter" in out:
            share = cfg.kd_teacher_memory
            teacher = share * out["inter"]["cas"] + (1 - share) * teacher
        tau = cfg.kd_temperature
        loss_kd = distillation_loss(out["main"]["cas"] / tau, torch.softmax(teacher / tau, -1),
                                    mask)
        loss_att = attention_normalisation_loss(out["main"]["att"], mask, cfg.topk_ratio)
        alpha = cfg.alpha_after_warmup if self.use_memory else cfg.alpha
        loss = (loss_fore + cfg.background_weight * loss_back + alpha * loss_kd
                + cfg.beta * loss_att)
        if cfg.batch_reduction == "sum":
            loss = loss * len(labels)
        if self.training and self.use_memory:
            self.update_memory(out["mu"], labels)
        return loss, {"loss_fore": loss_fore.item(), "loss_back": loss_back.item(),
                      "loss_kd": loss_kd.item(), "loss_att": loss_att.item()}

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        w = self.cfg.main_weight
        video = (w * torch.softmax(out["main"]["ca_logits"], dim=1)
                 + (1 - w) * torch.softmax(out["intra"]["ca_logits"], dim=1))[:, :-1]
        probs = (w * torch.softmax(out["main"]["cas"], dim=-1)
                 + (1 - w) * torch.softmax(out["intra"]["cas"], dim=-1))[..., :-1]
        return video, probs * out["main"]["att"][..., None]


def build(*, feature_dim: int, num_classes: int, **options: Any) -> Rskp:
    """The model with ``options`` over :class:`RskpConfig`'s defaults."""
    return Rskp(feature_dim=feature_dim, num_classes=num_classes, **options)


# LeonHLJ/RSKP: options.py, evaluation/detectionMAP.py
OFFICIAL_POST = {"post.thresholds": tuple(round(0.001 + 0.002 * i, 3) for i in range(20)),
                 "post.class_threshold": 0.1, "post.always_best_class": False,
                 "post.upsample": 1, "post.min_length": 2, "post.oic_delta": 0.25,
                 "post.gamma": 0.0, "post.suppression": "nms", "post.nms_iou": 0.5,
                 "post.nms_overlap": "candidate", "post.max_per_video": 0}

METHOD = Method(name="rskp", config=RskpConfig, build=build,
                summary="RSKP, representative snippet knowledge propagation (Huang et al., CVPR 2022)",
                defaults={"train.lr": 5e-5, "train.adam_beta2": 0.99, "train.weight_decay": 5e-4,
                          "train.batch_size": 10, "train.epochs": 200, "data.max_snippets": 0,
                          **OFFICIAL_POST})
