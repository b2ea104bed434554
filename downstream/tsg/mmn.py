"""MMN: mutual matching network (Wang et al., "Negative Sample Matters: A Renaissance of Metric
Learning for Temporal Grounding", AAAI 2022). Full supervision: each sentence's moment.

From the paper and the official code (MCG-NJU/MMN: ``mmn/modeling/mmn/*.py``,
``configs/pool_charades_16x16_k5l8.yaml``, ``train_net.py``, ``engine/trainer.py``), Charades-STA
settings as defaults:

* video: every clip feature L2-normalized, resampled to 32 positions, then the 16 x 16 moment
  map of :mod:`downstream.tsg.moment_map` (hidden 512, 8 layers of 5 x 5, joint space 256) with
  two heads: a contrastive map and an IoU map;
* sentence: the text features, LayerNorm, two linear heads (contrastive, IoU) to 256;
* IoU loss: ``sigmoid(10 cos(s_iou, m_iou))`` of every cell against its IoU with the moment,
  scaled linearly from [min_iou, max_iou] = [0.5, 1.0] to [0, 1], binary cross entropy;
* mutual matching (cross-modal contrastive) losses over in-batch negatives: video-to-text (the
  sentence's best-IoU cell against every sentence of the batch, sentences of the same video whose
  moments overlap at IoU >= 0.5 left out, tau 0.1) and text-to-video (the sentence against that
  cell, the cells of its video with IoU < 0.5 and all cells of the other videos, tau 0.1); the
  positive pair's similarity is lowered by the margin 0.4 in both; weight 0.05, and 0.05 x 0.01
  after epoch 7 (``SOLVER.ONLY_IOU``);
* AdamW, lr 1e-4, betas (0.9, 0.99), weight decay 1e-5, batch 48, 18 epochs, lr x 0.1 after
  epochs 8 and 13, gradient norm clipped at 5; a batch is 48 *videos* with all their sentences
  (``data.batches: by_video``; about 2.3 sentences each on Charades-STA), the map computed once
  per video; ``data.batches=random`` batches 48 sentences instead (the videos of a batch are
  then mostly distinct, and an epoch computes a map per sentence);
* score of a cell at inference: ``((cos_c + 1) / 2) ** 0.5 * iou_score``; the ranked cells go
  through NMS at IoU 0.5 (``post.nms_threshold``).

Deliberate differences and interpretations:

* text: DistilBERT (fine-tuned after 4 frozen epochs at 0.1 x lr) is not available offline. The
  default is :class:`~downstream.tsg.text.GruSentenceEncoder` (learned 300-d embeddings, bi-GRU,
  averaged over words, trained from the start at the base lr); ``text_encoder: minilm`` uses the
  frozen packaged all-MiniLM-L6-v2 instead (never fine-tuned).
* the official text-to-video loss multiplies the same-video cells with IoU >= 0.5 by zero instead
  of dropping them (each adds exp(0) to the denominator); this is kept, as the reported numbers
  come from it.
* checkpoints are selected on the validation split (the official code reports the test set of
  every epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from downstream.task import Method
from downstream.tsg.base import Moment, TsgModel, resample_clips, video_groups
from downstream.tsg.moment_map import MomentMap, check_geometry, iou_map, ranked_cells
from downstream.tsg.text import Vocabulary, build_sentence_encoder


@dataclass(frozen=True)
class MmnConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "hidden", "joint_dim", "kernel_size", "num_clips", "num_layers", "num_positive",
        "num_pre_clips", "pool_kernel", "pooling_counts", "predictor_hidden", "tau_sentence",
        "tau_video", "text_hidden", "word_dim"})
    text_encoder: Literal["gru", "minilm"] = "gru"  # see the module docstring
    word_dim: int = 300  # learned word embeddings (GloVe's width); gru only
    text_hidden: int = 256  # GRU width per direction (sentence features: 2x); gru only
    num_pre_clips: int = 32  # INPUT.NUM_PRE_CLIPS: positions the clips are resampled to
    num_clips: int = 16  # N: map size
    pool_kernel: int = 2  # FEATPOOL.KERNEL_SIZE (stride num_pre_clips // num_clips)
    pooling_counts: tuple[int, ...] = (15,)  # FEAT2D.POOLING_COUNTS
    hidden: int = 512  # FEATPOOL.HIDDEN_SIZE
    predictor_hidden: int = 512  # PREDICTOR.HIDDEN_SIZE
    kernel_size: int = 5  # PREDICTOR.KERNEL_SIZE
    num_layers: int = 8  # PREDICTOR.NUM_STACK_LAYERS
    joint_dim: int = 256  # JOINT_SPACE_SIZE
    min_iou: float = 0.5  # LOSS.MIN_IOU: IoU scaled to 0 here
    max_iou: float = 1.0  # LOSS.MAX_IOU: IoU scaled to 1 here
    num_positive: int = 1  # LOSS.NUM_POSTIVE_VIDEO_PROPOSAL: best-IoU cells as positives
    negative_iou: float = 0.5  # LOSS.NEGATIVE_VIDEO_IOU: same-video cells below it are negatives
    sentence_removal_iou: float = 0.5  # LOSS.SENT_REMOVAL_IOU
    tau_video: float = 0.1  # LOSS.TAU_VIDEO
    tau_sentence: float = 0.1  # LOSS.TAU_SENT
    margin: float = 0.4  # LOSS.MARGIN
    contrastive_weight: float = 0.05  # LOSS.CONTRASTIVE_WEIGHT
    only_iou_epoch: int = 7  # SOLVER.ONLY_IOU: later epochs weight the contrastive terms 0.01x
    score_pow: float = 0.5  # TEST.CONTRASTIVE_SCORE_POW

    def __post_init__(self) -> None:
        check_geometry(num_pre_clips=self.num_pre_clips, num_clips=self.num_clips,
                       pool_kernel=self.pool_kernel, pooling_counts=self.pooling_counts,
                       kernel_size=self.kernel_size, num_layers=self.num_layers)


def scaled_iou_loss(scores: torch.Tensor, ious: torch.Tensor, min_iou: float,
                    max_iou: float) -> torch.Tensor:
    """Binary cross entropy of cell scores in (0, 1) against ``(iou - min) / (max - min)``
    clipped to [0, 1]; both ``(M,)`` over the valid cells of every sentence."""
    target = ((ious - min_iou) / (max_iou - min_iou)).clamp(0, 1)
    return F.binary_cross_entropy(scores, target)


def mutual_matching_losses(cells: torch.Tensor, sentences: torch.Tensor, ious: torch.Tensor,
                           video: torch.Tensor, moments: torch.Tensor, *, num_positive: int,
                           negative_iou: float, removal_iou: float, margin: float,
                           tau_video: float, tau_sentence: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(video-to-text, text-to-video) contrastive losses of MMN's ``ContrastiveLoss``.

    ``cells (V, C, P)`` and ``sentences (B, C)`` L2-normalized, ``ious (B, P)`` of each sentence
    with its video's cells, ``video (B,)`` the video position of each sentence, ``moments
    (B, 2)`` seconds.
    """
    num_videos, channels = cells.shape[:2]
    count = sentences.shape[0]
    own = cells[video]  # (B, C, P)
    top = ious.topk(num_positive, dim=1).indices  # (B, K)
    positive = own.gather(2, top[:, None, :].expand(-1, channels, -1)).transpose(1, 2)  # (B,K,C)
    pos = (positive * sentences[:, None, :]).sum(-1) - margin  # (B, K)

    # video -> text: the positive cell against every sentence of the batch
    eye = torch.eye(count, device=cells.device)
    same_video = video[:, None] == video[None, :]
    overlap = pairwise_iou(moments)
    keep = (~(same_video & (overlap >= removal_iou))).float().maximum(eye)  # (B, B)
    to_text = (positive @ sentences.T - margin * eye[:, None, :]) / tau_video  # (B, K, B)
    loss_video = -(pos / tau_video - torch.log((to_text.exp() * keep[:, None, :]).sum(-1)))

    # text -> video: the sentence against its positive, its video's low-IoU cells (the others
    # multiplied by 0, as the official code does) and every cell of the other videos
    same = (sentences[:, :, None] * own).sum(1) * (ious < negative_iou).float()  # (B, P)
    others = torch.einsum("bc,vcp->bvp", sentences, cells)  # (B, V, P)
    other_video = (torch.arange(num_videos, device=cells.device)[None]
                   != video[:, None]).float()  # (B, V)
    negatives = ((same / tau_sentence).exp().sum(-1)
                 + ((others / tau_sentence).exp().sum(-1) * other_video).sum(-1))  # (B,)
    pos_sentence = pos / tau_sentence
    loss_sentence = -(pos_sentence - torch.log(pos_sentence.exp() + negatives[:, None] + 1e-6))
    return loss_video.mean(), loss_sentence.mean()


def pairwise_iou(moments: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` IoU of ``(B, 2)`` moments."""
    start, end = moments[:, 0], moments[:, 1]
    inter = (torch.minimum(end[:, None], end[None]) - torch.maximum(start[:, None], start[None]))
    union = (end - start)[:, None] + (end - start)[None] - inter.clamp(min=0)
    return inter.clamp(min=0) / union


class Mmn(TsgModel):
    def __init__(self, *, feature_dim: int, vocab: list[str], options: MmnConfig):
        super().__init__()
        o = self.options = options
        self.video = MomentMap(feature_dim=feature_dim, num_pre_clips=o.num_pre_clips,
                               num_clips=o.num_clips, pool_kernel=o.pool_kernel,
                               pooling_counts=o.pooling_counts, hidden=o.hidden,
                               predictor_hidden=o.predictor_hidden, kernel_size=o.kernel_size,
                               num_layers=o.num_layers, joint_dim=o.joint_dim, heads=2)
        self.text = build_sentence_encoder(o.text_encoder, Vocabulary(tuple(vocab)),
                                           word_dim=o.word_dim, hidden=o.text_hidden)
        self.text_norm = nn.LayerNorm(self.text.out_dim)
        self.text_contrastive = nn.Linear(self.text.out_dim, o.joint_dim)
        self.text_iou = nn.Linear(self.text.out_dim, o.joint_dim)
        self.epoch = 1  # 1-based, as SOLVER.ONLY_IOU counts

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        self.epoch = epoch + 1

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """(contrastive map ``(V, C, N, N)``, IoU map, sentence ``(B, C)`` x 2, video ``(B,)``)."""
        first, video = video_groups(batch["video_id"])
        clips = F.normalize(batch["features"][first], dim=-1)
        clips = resample_clips(clips, batch["mask"][first], self.options.num_pre_clips)
        _, (map_c, map_iou) = self.video(clips)
        text = self.text_norm(self.text(batch["text"]))
        return (map_c, map_iou, self.text_contrastive(text), self.text_iou(text),
                video.to(map_c.device))

    def iou_scores(self, map_iou: torch.Tensor, sent_iou: torch.Tensor,
                   video: torch.Tensor) -> torch.Tensor:
        """``(B, N, N)``: ``sigmoid(10 cos)`` of each sentence with its video's IoU map."""
        cos = torch.einsum("bc,bcij->bij", F.normalize(sent_iou, dim=1),
                           F.normalize(map_iou[video], dim=1))
        return torch.sigmoid(10 * cos)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        map_c, map_iou, sent_c, sent_iou, video = self.encode(batch)
        mask2d = self.video.mask2d
        o = self.options
        ious = iou_map(batch["moment"], batch["duration"], o.num_clips)  # (B, N, N)
        scores = self.iou_scores(map_iou, sent_iou, video)
        loss_iou = scaled_iou_loss(scores[:, mask2d], ious[:, mask2d], o.min_iou, o.max_iou)
        loss_video, loss_sentence = mutual_matching_losses(
            self.video.cell_features(map_c), F.normalize(sent_c, dim=1), ious[:, mask2d], video,
            batch["moment"], num_positive=o.num_positive, negative_iou=o.negative_iou,
            removal_iou=o.sentence_removal_iou, margin=o.margin, tau_video=o.tau_video,
            tau_sentence=o.tau_sentence)
        weight = o.contrastive_weight * (1.0 if self.epoch <= o.only_iou_epoch else 0.01)
        loss = loss_iou + weight * (loss_video + loss_sentence)
        return loss, {"loss_iou": loss_iou.item(), "loss_video": loss_video.item(),
                      "loss_sentence": loss_sentence.item()}

    @torch.no_grad()
    def ground(self, batch: dict[str, Any]) -> list[list[Moment]]:
        map_c, map_iou, sent_c, sent_iou, video = self.encode(batch)
        cos = torch.einsum("bc,bcij->bij", F.normalize(sent_c, dim=1),
                           F.normalize(map_c[video], dim=1))
        scores = (cos * 0.5 + 0.5) ** self.options.score_pow * self.iou_scores(
            map_iou, sent_iou, video)
        return [ranked_cells(scores[b], self.video.mask2d, float(batch["duration"][b]))
                for b in range(len(scores))]


def build(*, feature_dim: int, vocab: list[str], **options: Any) -> Mmn:
    """MMN on ``feature_dim`` clip features with the vocabulary ``vocab``; ``options``: the
    fields of :class:`MmnConfig`."""
    return Mmn(feature_dim=feature_dim, vocab=vocab, options=MmnConfig(**options))


METHOD = Method(
    name="mmn", config=MmnConfig, build=build, needs=("sentences", "moments"),
    summary="MMN, 2D moment map with mutual matching (Wang et al., AAAI 2022); full: moments",
    defaults={"train.optimizer": "adamw", "train.lr": 1e-4, "train.adam_beta2": 0.99,
              "train.weight_decay": 1e-5, "train.batch_size": 48, "train.epochs": 18,
              "train.lr_milestones": [8, 13], "train.lr_gamma": 0.1, "train.grad_clip": 5.0,
              "data.max_snippets": 0, "data.batches": "by_video"})
