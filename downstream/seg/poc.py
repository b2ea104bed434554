"""POC: set-supervised action segmentation with a pairwise order consistency loss (Lu and
Elhamifar, "Set-Supervised Action Learning in Procedural Task Videos via Pairwise Order
Consistency", CVPR 2022; official code github.com/ZijiaLewisLu/CVPR22-POC, ``src/utils/
{wavenet,model,thresholder,analysis}.py``, ``src/train.py``, ``src/configs/breakfast.yaml``).

Set supervision: training reads only each video's action set (``video_labels``), never frame
labels. Background (index K) plays the role of Breakfast's SIL in the official code: it is in
every video's set, has class weight 1, is the class of the length loss and is left out of the
order and centering losses.

Followed (official model and Breakfast configuration):

* Backbone: dropout 0.05 on the input, 1x1 conv to ``hidden_size`` = 128, ReLU, dilated
  residual layers (dilations 1, 2, 4, 8, 16; dilated conv -> ReLU -> 1x1 conv -> dropout 0.25,
  added to the input), max pooling by 2 after layers 1, 2 and 4 (T' = T / 8), ReLU, 1x1 conv,
  GroupNorm with 16 groups -> ``z (T', H)``.
* Attention head: per-step class logits ``l = Linear(z) (T', K + 1)``, frame softmax ``p``;
  each class's video feature ``r_c = sum_t p_tc z_t / T'``; its set score
  ``s_c = <w_c, r_c> + b_c`` (a weight vector per class, Xavier-normal initialised) and its own
  threshold ``theta_c`` = the c-th output of a 3-layer MLP (hidden 64) applied to ``r_c``.
* Losses of a video, summed: LSEP ranking of ``s`` (in-set above out-of-set, log(1 + sum over
  in-set a, out-of-set n of w_a exp(s_n - s_a)), exponent clamped at 50, class weights
  ``w = (1 - f) / f`` from the frequency f of each class in the training sets, normalised to
  mean 1 over the set); 0.5 x weighted BCE of ``s - theta`` against the set; 0.5 x the frame
  ranking loss (per step, log(1 + sum_a exp(mean_n l_n - l_a)), averaged over steps); 0.5 x the
  background length loss (``-log(m / m_min)`` when the background's attention mass
  ``m = sum_t p_t,bg`` is below ``m_min = ceil(T' / (100 |set|))``, ``|set|`` counting
  background); 1.0 x the centering loss (per in-set action, the attention-weighted variance of
  the normalised time t / (T' - 1) around the action's attention centre). Averaged over the
  batch's videos.
* Pairwise order consistency (weight 0.1): per video, attentions renormalised over time,
  ``O(i, j) = sum_t a_i(t) (1 - sum_{s<=t} a_j(s))`` (the probability that i comes before j);
  for every pair of actions in the sets of at least two videos of the batch, the estimated
  order of the pair is the batch mean of ``O`` (not detached, as in the official code) and each
  of those videos pays ``1 - O_ref(i, j) O_v(i, j) - O_ref(j, i) O_v(j, i)``; averaged over
  the (pair, video) terms.
* Inference: the predicted set is ``{c : s_c > theta_c}``; each step takes the in-set class of
  largest logit ``l``; step t of the features takes the label of pooled step t // 8.
* Optimisation (breakfast.yaml): SGD, lr 0.02, momentum 0.009, no weight decay, gradient norm
  clipped at 10, batches of 2 videos, 250 epochs, whole videos. Batches are drawn as the
  official ``DataLoader_GroupSample`` draws them: an activity (Breakfast: a recipe) at random,
  then videos of that activity, so that they share action pairs for the order loss
  (``data.batches: by_activity``; the manifest needs activities; ``data.batches=random`` draws
  shuffled batches of any activities instead).

Deliberate differences and interpretations:

* Class frequencies: from the training split's action sets (the official script counts every
  ground-truth file, test included).
* The pooling counts feature steps, as the official counts frames of its 15-fps Breakfast
  features (8 frames, about 0.5 s, per pooled step there); on a store of one step per second a
  pooled step is 8 s. Kept as published; ``poc.pool_after`` sets it.
* Pooling keeps a last odd step (ceil mode) so every feature step maps to pooled step
  t // 2^p; the official floors and resizes the prediction by nearest interpolation.
* Decoding: out-of-set classes are excluded outright (their scores lowered by 1e4); the
  official zeroes them, so an out-of-set class wins where every in-set logit is negative. An
  empty predicted set is replaced by the class of largest ``s - theta``.
* Losses that are undefined in corner cases the official data never meets are 0 there: the
  frame ranking loss of a video whose set holds every class, the centering loss of a video of
  one pooled step.
* Options of the official code that its Breakfast configuration leaves off are not
  implemented: the attention smoothness loss, a maximum background length, the transcript-
  supervised order loss.
* The run selects its checkpoint on the validation split (frame accuracy); the official code
  evaluates on the test split during training.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from downstream.seg.base import SegModel
from downstream.task import Method

OUT_OF_SET = 1e4  # decoding lowers the scores of classes outside the predicted set by this


@dataclass(frozen=True)
class PocConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "dilations", "hidden_size", "norm_groups", "thres_hidden", "thres_layers"})
    hidden_size: int = 128  # backbone width H (wavenet.hidden_size)
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)  # dilated residual layers (output_level 5)
    pool_after: tuple[int, ...] = (1, 2, 4)  # max-pool by 2 after these layers: T' = T / 8
    input_dropout: float = 0.05  # dropout on the input features (wavenet.dropout_on_x)
    layer_dropout: float = 0.25  # dropout inside each residual layer
    norm_groups: int = 16  # GroupNorm groups on the backbone output (wavenet.gn_num_groups)
    thres_hidden: int = 64  # hidden width of the per-class threshold MLP (thres.hidden_size)
    thres_layers: int = 3  # layers of that MLP (thres.num_layer)
    thres_weight: float = 0.5  # weight of the thresholded-set BCE loss (thres.w)
    frame_rank_weight: float = 0.5  # weight of the frame ranking loss (att_ranking_loss.w)
    length_weight: float = 0.5  # weight of the background length loss (att_len_loss.w)
    length_min: float = 100.0  # background mass >= T' / (this x |set|) ("100a"; 0: no loss)
    centering_weight: float = 1.0  # weight of the attention centering loss (centering_loss.w)
    poc_weight: float = 0.1  # weight of the pairwise order consistency loss (poc_loss.w)

    def __post_init__(self) -> None:
        if self.hidden_size % self.norm_groups:
            raise ValueError(f"poc.hidden_size={self.hidden_size} must be a multiple of "
                             f"poc.norm_groups={self.norm_groups}")
        if self.thres_layers < 1 or not self.dilations:
            raise ValueError("poc.thres_layers must be >= 1 and poc.dilations not empty")
        bad = [i for i in self.pool_after if not 0 <= i < len(self.dilations)]
        if bad:
            raise ValueError(f"poc.pool_after={self.pool_after}: layers {bad} do not exist "
                             f"(poc.dilations={self.dilations} makes {len(self.dilations)})")


# ---- losses of one video (pure functions) -----------------------------------------------------

def lsep_loss(scores: torch.Tensor, in_set: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted log-sum-exp pairwise ranking of the set scores ``(C,)``: in-set classes above
    out-of-set ones; ``weight (C,)`` is normalised to mean 1 over the set."""
    pos, neg = scores[in_set], scores[~in_set]
    gaps = torch.exp(torch.clamp(neg[None, :] - pos[:, None], max=50)).sum(dim=1)  # (A,)
    w = weight[in_set] / weight[in_set].mean()
    return torch.log1p((w * gaps).sum())


def frame_rank_loss(logits: torch.Tensor, in_set: torch.Tensor) -> torch.Tensor:
    """Per step, ``log(1 + sum_a exp(mean_n l_n - l_a))`` over in-set a and out-of-set n of the
    step logits ``(T', C)``, averaged over steps (0 when no class is out of the set)."""
    if in_set.all():
        return logits.new_zeros(())
    gaps = logits[:, ~in_set].mean(dim=1, keepdim=True) - logits[:, in_set]  # (T', A)
    zero = gaps.new_zeros(gaps.shape[0], 1)
    return torch.logsumexp(torch.cat([zero, gaps], dim=1), dim=1).mean()


def length_loss(probs: torch.Tensor, set_size: int, background: int,
                factor: float) -> torch.Tensor:
    """``-log(m / m_min)`` when the background attention mass ``m`` of ``probs (T', C)`` is
    below ``m_min = ceil(T' / (factor x set_size))``, else 0."""
    mass = probs[:, background].sum()
    if factor <= 0:
        return probs.new_zeros(())
    least = math.ceil(probs.shape[0] / (factor * set_size))
    return -torch.log(mass / least) if mass < least else probs.new_zeros(())


def centering_loss(probs: torch.Tensor) -> torch.Tensor:
    """Mean over steps and actions of ``(t - c_a)^2 p_ta`` for ``probs (T', A)`` of in-set
    actions, ``t`` normalised to [0, 1] and ``c_a`` the attention-weighted mean time of a."""
    steps, actions = probs.shape
    if steps < 2 or actions == 0:
        return probs.new_zeros(())
    t = torch.arange(steps, dtype=probs.dtype, device=probs.device)[:, None] / (steps - 1)
    centre = (probs * t).sum(dim=0) / (probs.sum(dim=0) + 1e-5)  # (A,)
    return ((t - centre) ** 2 * probs).mean()


def order_scores(attention: torch.Tensor) -> torch.Tensor:
    """``O (C, C)`` of ``attention (T', C)`` (each column renormalised over time):
    ``O[i, j] = sum_t a_i(t) (1 - sum_{s<=t} a_j(s))``, the chance that i comes before j."""
    a = attention / (attention.sum(dim=0, keepdim=True) + 1e-5)
    return a.t() @ (1 - torch.cumsum(a, dim=0))


def poc_loss(orders: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """Pairwise order consistency over a batch: ``orders (V, C, C)`` from :func:`order_scores`,
    ``sets (V, C)`` bool (the actions whose order counts). Every pair in the sets of at least
    two videos gets the reference order ``mean_v O_v``; each such video pays
    ``1 - ref(i, j) O_v(i, j) - ref(j, i) O_v(j, i)``. Mean over those terms (0 if none)."""
    s = sets.to(orders.dtype)
    upper = torch.ones_like(orders[0]).triu(diagonal=1)  # each unordered pair once (i < j)
    pairs = s[:, :, None] * s[:, None, :] * upper  # (V, C, C)
    shared = (pairs.sum(dim=0) >= 2).to(orders.dtype)  # pairs of >= 2 videos
    pairs = pairs * shared
    if pairs.sum() == 0:
        return orders.new_zeros(())
    count = pairs.sum(dim=0).clamp(min=1)
    reverse = orders.transpose(1, 2)  # reverse[v, i, j] = O_v(j, i)
    ref_ij = (pairs * orders).sum(dim=0) / count
    ref_ji = (pairs * reverse).sum(dim=0) / count
    error = 1 - ref_ij * orders - ref_ji * reverse
    return (error * pairs).sum() / pairs.sum()


# ---- model ----------------------------------------------------------------------------------

class Backbone(nn.Module):
    """Dilated residual temporal convolutions with max pooling: ``(1, D, T) -> (T', H)``."""

    def __init__(self, in_dim: int, hidden: int, dilations: tuple[int, ...],
                 pool_after: tuple[int, ...], input_dropout: float, layer_dropout: float,
                 norm_groups: int):
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout)
        self.first = nn.Conv1d(in_dim, hidden, 1)
        self.dilated = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d)
                                     for d in dilations)
        self.pointwise = nn.ModuleList(nn.Conv1d(hidden, hidden, 1) for _ in dilations)
        self.layer_dropout = nn.Dropout(layer_dropout)
        self.pool_after = set(pool_after)
        self.last = nn.Conv1d(hidden, hidden, 1)
        self.norm = nn.GroupNorm(norm_groups, hidden)

    @property
    def stride(self) -> int:
        """Feature steps per pooled step."""
        return 2 ** len(self.pool_after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.first(self.input_dropout(x)))
        for i, (dilated, pointwise) in enumerate(zip(self.dilated, self.pointwise)):
            x = x + self.layer_dropout(pointwise(F.relu(dilated(x))))
            if i in self.pool_after:
                x = F.max_pool1d(x, 2, ceil_mode=True)
        x = self.norm(self.last(F.relu(x)))
        return x[0].t()  # (T', H)


class Poc(SegModel):
    def __init__(self, *, feature_dim: int, num_classes: int, cfg: PocConfig):
        super().__init__()
        classes, hidden = num_classes + 1, cfg.hidden_size  # background last
        self.cfg, self.background = cfg, num_classes
        self.backbone = Backbone(feature_dim, hidden, cfg.dilations, cfg.pool_after,
                                 cfg.input_dropout, cfg.layer_dropout, cfg.norm_groups)
        self.attention = nn.Linear(hidden, classes)
        self.set_weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(classes, hidden)))
        self.set_bias = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, classes))[0])
        sizes = [hidden] + [cfg.thres_hidden] * (cfg.thres_layers - 1)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.thres_hidden = nn.Sequential(*layers)
        self.thres_out = nn.Linear(sizes[-1], classes)  # class c reads only its own row
        # Class weights (1 - f) / f of the training sets' frequencies f (start_epoch sets them).
        self.register_buffer("class_weight", torch.ones(classes))
        self.register_buffer("weighted", torch.zeros((), dtype=torch.bool))

    def video(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """One unpadded video ``(T, D)``: step logits ``(T', C)``, their frame softmax, set
        scores ``(C,)`` and thresholds ``(C,)``."""
        z = self.backbone(features.t()[None])  # (T', H)
        logits = self.attention(z)  # (T', C)
        probs = F.softmax(logits, dim=1)
        rep = probs.t() @ z / z.shape[0]  # (C, H): attention-pooled feature of each class
        scores = (rep * self.set_weight).sum(dim=1) + self.set_bias
        h = self.thres_hidden(rep)  # (C, hidden)
        thres = (h * self.thres_out.weight).sum(dim=1) + self.thres_out.bias
        return {"logits": logits, "probs": probs, "scores": scores, "thres": thres}

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        """Once per run: the class weights from the training videos' action sets."""
        if bool(self.weighted):
            return
        counts, videos = 0.0, 0
        for batch in train_batches():
            counts = counts + batch["video_labels"].sum(dim=0)
            videos += batch["video_labels"].shape[0]
        freq = torch.as_tensor(counts, dtype=torch.float32) / max(videos, 1)
        weight = torch.where((freq > 0) & (freq < 1), (1 - freq) / freq.clamp(min=1e-8),
                             torch.ones_like(freq))
        self.class_weight[: self.background] = weight.to(self.class_weight)
        self.weighted.fill_(True)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, bg = self.cfg, self.background
        lengths = batch["mask"].sum(dim=1).tolist()
        sets = F.pad(batch["video_labels"], (0, 1), value=1.0) > 0  # (B, C), background in
        terms: dict[str, torch.Tensor] = {}
        orders = []
        for b, length in enumerate(lengths):
            out = self.video(batch["features"][b, : int(length)])
            in_set = sets[b]
            actions = in_set.clone()
            actions[bg] = False
            video_terms = {
                "loss_rank": lsep_loss(out["scores"], in_set, self.class_weight),
                "loss_thres": cfg.thres_weight * F.binary_cross_entropy_with_logits(
                    out["scores"] - out["thres"], in_set.float(), weight=self.class_weight),
                "loss_frame_rank": cfg.frame_rank_weight * frame_rank_loss(out["logits"],
                                                                           in_set),
                "loss_length": cfg.length_weight * length_loss(
                    out["probs"], int(in_set.sum()), bg, cfg.length_min),
                "loss_center": cfg.centering_weight * centering_loss(out["probs"][:, actions]),
            }
            for name, value in video_terms.items():
                terms[name] = terms.get(name, 0.0) + value / len(lengths)
            orders.append(order_scores(out["probs"] / out["probs"].shape[0]))
        actions = sets.clone()
        actions[:, bg] = False
        terms["loss_poc"] = cfg.poc_weight * poc_loss(torch.stack(orders), actions)
        loss = sum(terms.values())
        return loss, {name: float(value.detach()) for name, value in terms.items()}

    def segment(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Step logits restricted to the predicted set (others lowered by ``OUT_OF_SET``), at
        the feature grid: ``(B, T, K + 1)``, zero at padded steps."""
        out = features.new_zeros(*features.shape[:2], self.background + 1)
        for b, length in enumerate(mask.sum(dim=1).tolist()):
            length = int(length)
            video = self.video(features[b, :length])
            margin = video["scores"] - video["thres"]
            in_set = margin > 0
            if not in_set.any():
                in_set[margin.argmax()] = True
            logits = video["logits"] - OUT_OF_SET * (~in_set).to(video["logits"].dtype)
            steps = torch.arange(length, device=features.device) // self.backbone.stride
            out[b, :length] = logits[steps]
        return out


def build(*, feature_dim: int, num_classes: int, hidden_size: int, dilations: tuple[int, ...],
          pool_after: tuple[int, ...], input_dropout: float, layer_dropout: float,
          norm_groups: int, thres_hidden: int, thres_layers: int, thres_weight: float,
          frame_rank_weight: float, length_weight: float, length_min: float,
          centering_weight: float, poc_weight: float) -> Poc:
    """POC; every option is a field of :class:`PocConfig` (defaults there)."""
    cfg = PocConfig(
        hidden_size=hidden_size, dilations=tuple(dilations), pool_after=tuple(pool_after),
        input_dropout=input_dropout, layer_dropout=layer_dropout, norm_groups=norm_groups,
        thres_hidden=thres_hidden, thres_layers=thres_layers, thres_weight=thres_weight,
        frame_rank_weight=frame_rank_weight, length_weight=length_weight,
        length_min=length_min, centering_weight=centering_weight, poc_weight=poc_weight)
    return Poc(feature_dim=feature_dim, num_classes=num_classes, cfg=cfg)


METHOD = Method(
    name="poc", config=PocConfig, build=build, needs=("labels",),
    summary="POC, attention + pairwise order consistency (Lu and Elhamifar, CVPR 2022)",
    defaults={"train.optimizer": "sgd", "train.lr": 0.02, "train.momentum": 0.009,
              "train.weight_decay": 0.0, "train.grad_clip": 10.0, "train.batch_size": 2,
              "train.epochs": 250, "data.max_snippets": 0, "data.batches": "by_activity"})
