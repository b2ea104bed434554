"""RSKP: representative snippet knowledge propagation (Huang, Wang, Li, "Weakly Supervised
Temporal Action Localization via Representative Snippet Knowledge Propagation", CVPR 2022).

* Embedding of the clip features, then the FAC-Net head shared by three branches (Sec. 3,
  "Classification head"; supplementary Sec. 1): a class-agnostic attention
  a_t = sigmoid(s cos(f_t, w_fg)) (foreground score) and a MIL classifier with logits
  s cos(f_t, w_c) over K + 1 classes (the last one is background), s = ``scale`` (20 in the
  official code). Video-level losses: the attention-pooled logits against the labels
  (background 0) and the top-k (k = T/8) pooled logits against the labels with background 1,
  both as normalised cross entropy. The cosine logits matter: with plain linear layers the
  logits start near 0, the attention gets almost no gradient at lr 1e-4 and stays flat
  (0.36-0.40 after 30 demo epochs), so every class's activation sequence had the attention's
  flat profile and whole-video proposals won (mAP@0.5 ~ 0).
* Representative snippets: EM attention with 8 bases, 2 iterations, lambda 5 (Eq. 2-3); the
  initial bases are learnt by back-propagation (orthogonal init).
* A memory bank of 5 representative snippets per class, ranked by the classifier's score of
  the ground-truth class (Sec. 3.2); used after ``memory_warmup_epochs`` (intra-video only
  before).
* Bipartite random walk, closed form (Eq. 6) with w = 0.5, solved with ``torch.linalg.solve``;
  intra-video (mu^a) and inter-video (mu^e) bases are propagated separately.
* Loss (Eq. 8): L_cls of the three branches + alpha * L_kd (Eq. 7: the main branch's snippet
  class distribution against the detached fusion of the two propagated branches) + beta *
  L_att (attention normalisation of TSCN, main branch only); alpha 1, beta 0.1.
* Inference from the main and the intra-video branches, averaged (Sec. 4.2 "Testing details");
  the activation sequence of class c is (a_t + p_{t,c}) / 2 with p the snippet softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from downstream.tal.base import TalModel
from downstream.tal.layers import Embedding, topk_mean
from downstream.task import Method


@dataclass(frozen=True)
class RskpConfig:
    hidden: int = 256  # embedding width (the paper: 2048 on I3D features)
    # temporal kernel of the embedding: 3 as MIL, ASL and LACP here, so that the methods differ
    # in the method only (the paper's per-snippet layer is 1; MIL with 1 loses half its mAP on
    # one-per-second features)
    kernel_size: int = 3
    dropout: float = 0.5  # dropout after the embedding
    topk_ratio: int = 8  # k = T // topk_ratio for MIL pooling and attention normalisation
    num_bases: int = 8  # Gaussians of the EM attention (representative snippets per video)
    em_iterations: int = 2  # EM iterations (Eq. 2-3)
    em_lambda: float = 5.0  # lambda of Eq. 2 (softmax sharpness)
    walk_w: float = 0.5  # w of the bipartite random walk (Eq. 4-6)
    memory_slots: int = 5  # representative snippets kept per class in the memory bank
    memory_warmup_epochs: int = 5  # intra-video propagation only before this epoch
    alpha: float = 1.0  # weight of the distillation loss (Eq. 8)
    beta: float = 0.1  # weight of the attention normalisation loss (Eq. 8)
    scale: float = 20.0  # temperature of the cosine-similarity logits and attention


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
    def __init__(self, *, feature_dim: int, num_classes: int, hidden: int, kernel_size: int,
                 dropout: float, topk_ratio: int, num_bases: int, em_iterations: int,
                 em_lambda: float, walk_w: float, memory_slots: int, memory_warmup_epochs: int,
                 alpha: float, beta: float, scale: float):
        super().__init__()
        self.num_classes, self.topk_ratio = num_classes, topk_ratio
        self.em_iterations, self.em_lambda, self.walk_w = em_iterations, em_lambda, walk_w
        self.memory_warmup_epochs, self.alpha, self.beta = memory_warmup_epochs, alpha, beta
        self.scale = scale
        self.embed = Embedding(feature_dim, hidden, kernel_size, dropout)
        self.fg_center = nn.Parameter(torch.empty(1, hidden))  # class-agnostic foreground
        self.class_centers = nn.Parameter(torch.empty(num_classes + 1, hidden))  # background last
        nn.init.xavier_uniform_(self.fg_center)
        nn.init.xavier_uniform_(self.class_centers)
        self.init_bases = nn.Parameter(torch.empty(num_bases, hidden))
        nn.init.orthogonal_(self.init_bases)
        self.register_buffer("memory", torch.zeros(num_classes, memory_slots, hidden))
        self.register_buffer("memory_score", torch.full((num_classes, memory_slots), -1.0))
        self.use_memory = False

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        self.use_memory = epoch >= self.memory_warmup_epochs

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., H) -> (..., K + 1)``: the MIL classifier."""
        return cosine_logits(x, self.class_centers, self.scale)

    def head(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The shared classification head on ``x (B, T, H)``."""
        att = torch.sigmoid(cosine_logits(x, self.fg_center, self.scale)).squeeze(-1) * mask
        cas = self.class_logits(x)  # (B, T, K + 1)
        norm_att = att / att.sum(1, keepdim=True).clamp(min=1e-5)  # (B, T)
        return {"att": att, "cas": cas,
                "ca_logits": torch.einsum("bt,btc->bc", norm_att, cas),  # attention pooled
                "mil_logits": topk_mean(cas, mask, self.topk_ratio)}  # (B, K + 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor,
                video_labels: torch.Tensor | None = None) -> dict[str, Any]:
        x = self.embed(features, mask)  # (B, T, H)
        init = self.init_bases[None].expand(x.shape[0], -1, -1)
        mu = em_attention(x, init, mask, self.em_iterations, self.em_lambda)  # (B, n, H)
        x_intra = bipartite_random_walk(x, mu, affinity(x, mu, mask, self.em_lambda),
                                        self.walk_w)
        out = {"x": x, "mu": mu, "main": self.head(x, mask),
               "intra": self.head(x_intra, mask)}
        if video_labels is not None and self.use_memory:
            out["inter"] = self.head(self._inter_features(x, x_intra, mask, video_labels), mask)
        return out

    def _inter_features(self, x: torch.Tensor, x_intra: torch.Tensor, mask: torch.Tensor,
                        video_labels: torch.Tensor) -> torch.Tensor:
        """F^e: propagation of the memory's snippets of the video's classes (one video at a
        time, their number differs); a video whose classes have no memory yet keeps F^a."""
        rows = []
        for b in range(x.shape[0]):
            classes = torch.nonzero(video_labels[b] > 0).squeeze(1)
            filled = self.memory_score[classes] >= 0  # (|Y|, s)
            if not bool(filled.any()):
                rows.append(x_intra[b])
                continue
            bases = self.memory[classes][filled][None]  # (1, m, H)
            z = affinity(x[b:b + 1], bases, mask[b:b + 1], self.em_lambda)
            rows.append(bipartite_random_walk(x[b:b + 1], bases, z, self.walk_w)[0])
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
        mask, labels = batch["mask"], batch["video_labels"]
        out = self(batch["features"], mask, labels)
        ones = torch.ones_like(labels[:, :1])
        target_fg = torch.cat([labels, 0 * ones], dim=1)  # attention pooling removes background
        target_all = torch.cat([labels, ones], dim=1)  # every untrimmed video has background
        branches = [out[name] for name in ("main", "intra", "inter") if name in out]
        # No "(1 - attention)-pooled logits are background" term: the paper's head has none,
        # and where actions fill much of a video it teaches action snippets to be background.
        loss_cls = sum(normalised_cross_entropy(br["ca_logits"], target_fg)
                       + normalised_cross_entropy(br["mil_logits"], target_all)
                       for br in branches)
        teacher = torch.stack([torch.softmax(br["cas"], dim=-1) for br in branches[1:]]).mean(0)
        loss_kd = distillation_loss(out["main"]["cas"], teacher, mask)
        loss_att = attention_normalisation_loss(out["main"]["att"], mask, self.topk_ratio)
        loss = loss_cls + self.alpha * loss_kd + self.beta * loss_att
        if self.training:
            self.update_memory(out["mu"], labels)
        return loss, {"loss_cls": loss_cls.item(), "loss_kd": loss_kd.item(),
                      "loss_att": loss_att.item()}

    def localize(self, features: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(features, mask)
        video, cas = [], []
        for br in (out["main"], out["intra"]):
            video.append(torch.softmax(br["ca_logits"], dim=1)[:, :-1])
            probs = torch.softmax(br["cas"], dim=-1)[..., :-1]  # (B, T, K)
            cas.append(0.5 * (br["att"][..., None] + probs))
        return torch.stack(video).mean(0), torch.stack(cas).mean(0)


def build(*, feature_dim: int, num_classes: int, hidden: int = 256, kernel_size: int = 3,
          dropout: float = 0.5, topk_ratio: int = 8, num_bases: int = 8, em_iterations: int = 2,
          em_lambda: float = 5.0, walk_w: float = 0.5, memory_slots: int = 5,
          memory_warmup_epochs: int = 5, alpha: float = 1.0, beta: float = 0.1,
          scale: float = 20.0) -> Rskp:
    return Rskp(feature_dim=feature_dim, num_classes=num_classes, hidden=hidden,
                kernel_size=kernel_size, dropout=dropout, topk_ratio=topk_ratio,
                num_bases=num_bases, em_iterations=em_iterations, em_lambda=em_lambda,
                walk_w=walk_w, memory_slots=memory_slots,
                memory_warmup_epochs=memory_warmup_epochs, alpha=alpha, beta=beta, scale=scale)


METHOD = Method(name="rskp", config=RskpConfig, build=build,
                summary="RSKP, representative snippet knowledge propagation (Huang et al., CVPR 2022)")
