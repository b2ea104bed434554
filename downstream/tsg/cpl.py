"""CPL: Gaussian-based contrastive proposal learning (Zheng et al., "Weakly Supervised Temporal
Sentence Grounding with Gaussian-based Contrastive Proposal Learning", CVPR 2022). Weak
supervision: video-sentence pairs only; neither boundaries nor glances are read.

From the paper and the official code (minghangz/cpl: ``models/cpl.py``, ``models/loss.py``,
``models/transformer/*``, ``models/modules/mutihead_attention.py``, ``datasets/base.py``,
``runners/main_runner.py``, ``config/charades/main.json``), Charades-STA settings as defaults:

* clip features averaged into 200 positions (``max_num_frames``, MMN's ``avgfeats`` scheme), a
  learned "prediction" vector appended, dropout 0.1, a linear layer to 256; words: a learned
  start vector then the word vectors (at most 20 words), dropout 0.1, a linear layer to 256, plus
  sinusoidal positions;
* two post-norm transformer decoders (3 layers each, 4 heads, feed-forward 512, dropout 0.1,
  causal self-attention as in the official ``TransformerDecoder``). Proposals: decoder 2 encodes
  the words, decoder 1 reads the frames with cross-attention to them, and the prediction vector's
  output gives 8 Gaussians (sigmoid centre and width in [0, 1] of the video);
* reconstruction: frames kept at every 4th position (50), max(L // 3, 1) words replaced by a
  learned mask vector (drawn with probabilities proportional to e^2 for content words and e^1
  for the rest), decoder 1 encodes the frames with self-attention weighted by a proposal's
  Gaussian (width / sigma, sigma 9), decoder 2 predicts each word from the words before it and
  the Gaussian-weighted frames; cross entropy with label smoothing 0.1;
* easy-to-hard negative proposals left and right of each proposal (their centres move outwards
  with ``min(epoch / max_epoch, 1) ** gamma``, gamma 0.5, max_epoch 30) and the whole video
  as reference; losses: reconstruction of the best proposal and of the whole video (halved),
  plus the intra-video contrastive ranking: margins 0.1 (reference) and 0.15 (negatives),
  alpha_1 = 1, and alpha_2 = 5 times the diversity term ``|lambda I - G G^T|^2`` (lambda 0.146);
* Adam, lr 4e-4, no weight decay, 400 updates of linear warmup from 1e-7 then inverse square
  root decay (``train.lr_schedule: inverse_sqrt``), batch 32, 30 epochs, gradient norm clipped
  at 10;
* inference: the 8 proposals ranked by reconstruction loss (best first, score = -loss), no NMS
  (``post.nms_threshold`` 1); the official R@5 is the best of the first five of them (use
  ``evaluate tsg --nms 1`` for that protocol; the default 0.5 applies MMN's NMS).

Deliberate differences and interpretations:

* words: GloVe 840B vectors (frozen) are not available offline. ``text_encoder: embedding``
  learns a 300-d embedding per vocabulary word instead; ``text_encoder: minilm`` uses frozen
  pretrained vectors, each word's mean all-MiniLM-L6-v2 input word-piece embedding (384-d), see
  :mod:`downstream.tsg.text`. A sentence encoder (the GRU of MMN and D3G) is not offered: CPL
  reconstructs masked words from the words' own vectors, and a contextual encoder would leak
  the masked words.
* the masking weights come from a function-word list instead of NLTK's POS tagger
  (:data:`downstream.tsg.text.FUNCTION_WORDS`); words outside the vocabulary map to ``<unk>``
  (the official code drops them).
* words are masked at inference too, as in the official code, but with a fixed seed so that
  predictions are deterministic.
* checkpoints are selected on the validation split by R@1,IoU=0.5 (the official code selects on
  the test set's R@1 mIoU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from downstream.task import Method
from downstream.tsg.base import Moment, TsgModel, resample_clips
from downstream.tsg.text import MINILM_DIM, Vocabulary, minilm_word_vectors


@dataclass(frozen=True)
class CplConfig:
    # numbers that must be > 0 (every other must be >= 0: data_manifests.config)
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "decoder_layers1", "decoder_layers2", "hidden", "mask_divisor", "max_epoch",
        "max_words", "num_frames", "num_heads", "num_props", "props_stride", "sigma", "word_dim"})
    text_encoder: Literal["embedding", "minilm"] = "embedding"  # word vectors (docstring)
    word_dim: int = 300  # learned word vectors (GloVe's width); embedding only
    num_frames: int = 200  # max_num_frames: positions the clips are resampled to
    max_words: int = 20  # max_num_words: longer sentences keep their first words
    hidden: int = 256  # hidden_size = d_model
    num_heads: int = 4  # attention heads
    decoder_layers1: int = 3  # num_decoder_layers1 (frames)
    decoder_layers2: int = 3  # num_decoder_layers2 (words)
    dropout: float = 0.1  # on the inputs and inside the decoders
    num_props: int = 8  # Gaussian proposals per sentence
    props_stride: int = 4  # reconstruction reads every 4th frame position (200 -> 50)
    sigma: float = 9.0  # proposal Gaussian width divisor
    gamma: float = 0.5  # pace of the negative proposals
    max_epoch: int = 30  # epoch at which negatives reach their farthest (official: train epochs)
    use_negative: bool = True  # the left/right negative proposals and the reference
    mask_divisor: int = 3  # masked words per sentence: max(words // mask_divisor, 1)
    label_smoothing: float = 0.1  # eps of the reconstruction cross entropy
    margin_1: float = 0.1  # reference margin
    margin_2: float = 0.15  # negative-proposal margin
    lam: float = 0.146  # lambda of the diversity term
    alpha_1: float = 1.0  # weight of the ranking terms
    alpha_2: float = 5.0  # weight of the diversity term
    inference_seed: int = 0  # seed of the word masks at inference

    def __post_init__(self) -> None:
        if self.hidden % self.num_heads:
            raise ValueError(f"hidden={self.hidden} must be a multiple of "
                             f"num_heads={self.num_heads}")
        if self.num_frames // self.props_stride < 1:
            raise ValueError("num_frames // props_stride must be >= 1")


# ---- the official DualTransformer, rewritten ----------------------------------------------------

class GaussAttention(nn.Module):
    """Multi-head attention whose probabilities can be reweighted by a Gaussian over the keys
    (renormalized), as CPL's ``MultiheadAttention``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor | None,
                causal: bool, gauss: torch.Tensor | None) -> torch.Tensor:
        """``query (N, Lq, D)``, ``memory (N, Lk, D)``, ``padding (N, Lk)`` True = pad,
        ``gauss (N, Lk)`` -> ``(N, Lq, D)``."""
        n, lq, dim = query.shape
        lk, h = memory.shape[1], self.heads
        w, b = self.in_proj.weight, self.in_proj.bias
        q = F.linear(query, w[:dim], b[:dim]) * (dim // h) ** -0.5
        k, v = F.linear(memory, w[dim:], b[dim:]).chunk(2, dim=-1)
        q, k, v = (x.reshape(n, -1, h, dim // h).transpose(1, 2) for x in (q, k, v))
        scores = q @ k.transpose(-1, -2)  # (N, h, Lq, Lk)
        if causal:
            future = torch.ones(lq, lk, dtype=torch.bool, device=query.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        if padding is not None:
            scores = scores.masked_fill(padding[:, None, None, :], -1e30)
        probs = scores.softmax(-1)
        if gauss is not None:
            probs = probs * (gauss[:, None, None, :] + 1e-10)
            probs = probs / probs.sum(-1, keepdim=True)
        out = (probs @ v).transpose(1, 2).reshape(n, lq, dim)
        return self.out_proj(out)


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.self_attn, self.self_norm = GaussAttention(dim, heads), nn.LayerNorm(dim)
        self.cross_attn, self.cross_norm = GaussAttention(dim, heads), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.final_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None,
                memory: torch.Tensor | None, memory_padding: torch.Tensor | None,
                self_gauss: torch.Tensor | None, memory_gauss: torch.Tensor | None
                ) -> torch.Tensor:
        x = self.self_norm(x + self.dropout(self.self_attn(x, x, padding, True, self_gauss)))
        if memory is not None:
            x = self.cross_norm(x + self.dropout(
                self.cross_attn(x, memory, memory_padding, False, memory_gauss)))
        return self.final_norm(x + self.dropout(self.fc2(F.relu(self.fc1(x)))))


class Decoder(nn.Module):
    """Post-norm transformer decoder with causal self-attention (CPL's ``TransformerDecoder``)."""

    def __init__(self, layers: int, dim: int, heads: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None,
                memory: torch.Tensor | None = None, memory_padding: torch.Tensor | None = None,
                self_gauss: torch.Tensor | None = None,
                memory_gauss: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, padding, memory, memory_padding, self_gauss, memory_gauss)
        return x


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` tensor2tensor positions; position 0 (the padding index) is zeros."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
    angles = torch.arange(length, dtype=torch.float)[:, None] * freq[None]
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(length, 1)], dim=1)
    table[0] = 0
    return table


# ---- proposals and losses -----------------------------------------------------------------------

def gaussian_weights(length: int, center: torch.Tensor, width: torch.Tensor,
                     sigma: float) -> torch.Tensor:
    """``(N, length)`` Gaussians on ``linspace(0, 1, length)``, std ``max(width, 0.01) /
    sigma``, peak 1."""
    x = torch.linspace(0, 1, length, device=center.device)[None]
    std = width.clamp(min=1e-2)[:, None] / sigma
    weight = 0.3989422804014327 / std * torch.exp(-(x - center[:, None]) ** 2 / (2 * std**2))
    return weight / weight.max(dim=-1, keepdim=True).values


def negative_weights(length: int, center: torch.Tensor, width: torch.Tensor, epoch: int, *,
                     max_epoch: int, gamma: float, sigma: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right negative proposals of each ``(N,)`` proposal at ``epoch``: Gaussians
    in the room left and right of it, moving outwards as training goes on."""
    pace = min(epoch / max_epoch, 1) ** gamma * 0.5
    left = (center - width / 2).clamp(min=0) * pace
    right = 1 - (1 - center - width / 2).clamp(min=0) * pace
    return (gaussian_weights(length, left, left, sigma / 2),
            gaussian_weights(length, right, 1 - right, sigma / 2))


def word_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
             smoothing: float) -> torch.Tensor:
    """``(N,)`` mean over each sentence's words of the label-smoothed cross entropy;
    ``logits (N, L, V)``, ``ids``/``mask (N, L)``."""
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, ids[..., None])[..., 0]
    nll = (1 - smoothing) * nll + smoothing / logits.shape[-1] * -logp.sum(-1)
    mask = mask.to(nll.dtype)
    return (nll * mask).sum(-1) / mask.sum(-1)


def cpl_losses(nll: torch.Tensor, ref_nll: torch.Tensor | None, neg_nll: list[torch.Tensor],
               gauss: torch.Tensor, *, margin_1: float, margin_2: float, lam: float,
               alpha_1: float, alpha_2: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction + intra-video contrastive losses (``rec_loss`` + ``ivc_loss``).

    ``nll (B, P)`` of each proposal, ``ref_nll (B,)`` of the whole video, ``neg_nll`` two
    ``(B, P)`` of the negative proposals, ``gauss (B, P, L)`` the proposal weights."""
    best, index = nll.min(dim=1)  # (B,)
    rec = best.mean() if ref_nll is None else (best.mean() + ref_nll.mean()) / 2
    rank = best.mean() if ref_nll is None else F.relu(best - ref_nll + margin_1).mean()
    for neg in neg_nll:
        rank = rank + F.relu(best - neg.gather(1, index[:, None])[:, 0] + margin_2).mean()
    g = gauss / gauss.sum(-1, keepdim=True)
    target = lam * torch.eye(g.shape[1], device=g.device)
    diversity = ((target - g @ g.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()
    ivc = alpha_1 * rank + alpha_2 * diversity
    return rec + ivc, {"loss_rec": rec.item(), "loss_rank": rank.item(),
                       "loss_div": diversity.item()}


class Cpl(TsgModel):
    def __init__(self, *, feature_dim: int, vocab: list[str], options: CplConfig):
        super().__init__()
        o = self.options = options
        self.vocab = Vocabulary(tuple(vocab))
        if o.text_encoder == "minilm":
            word_dim = MINILM_DIM
            self.register_buffer("word_table", minilm_word_vectors(self.vocab))
            self.embed = None
        else:
            word_dim = o.word_dim
            self.embed = nn.Embedding(len(self.vocab), word_dim, padding_idx=0)
        self.frame_fc = nn.Linear(feature_dim, o.hidden)
        self.word_fc = nn.Linear(word_dim, o.hidden)
        self.mask_vec = nn.Parameter(torch.zeros(word_dim))
        self.start_vec = nn.Parameter(torch.zeros(word_dim))
        self.pred_vec = nn.Parameter(torch.zeros(feature_dim))
        self.decoder1 = Decoder(o.decoder_layers1, o.hidden, o.num_heads, o.dropout)
        self.decoder2 = Decoder(o.decoder_layers2, o.hidden, o.num_heads, o.dropout)
        self.fc_comp = nn.Linear(o.hidden, len(self.vocab))
        self.fc_gauss = nn.Linear(o.hidden, o.num_props * 2)
        self.dropout = nn.Dropout(o.dropout)
        self.epoch = 1  # 1-based, as the official negative mining counts

    def start_epoch(self, epoch: int, train_batches: Any) -> None:
        self.epoch = epoch + 1

    def word_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids) if self.embed is not None else F.embedding(ids, self.word_table)

    def mask_words(self, words: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
        """Replace max(L // mask_divisor, 1) words of each sentence (positions 1..L of ``words
        (B, L + 1, H)``) by the projected mask vector."""
        weights = self.vocab.mask_weights(ids.cpu()).exp()  # (B, L)
        chosen = torch.zeros(words.shape[:2], dtype=torch.bool)
        for b, length in enumerate(lengths.tolist()):
            count = max(length // self.options.mask_divisor, 1)
            picks = torch.multinomial(weights[b, :length], count, replacement=False,
                                      generator=generator)
            chosen[b, picks + 1] = True
        chosen = chosen.to(words.device)[..., None]
        token = self.word_fc(self.mask_vec)
        return torch.where(chosen, token, words)

    def forward(self, batch: dict[str, Any], *, negatives: bool,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        o = self.options
        device = batch["features"].device
        frames = resample_clips(batch["features"], batch["mask"], o.num_frames)  # (B, F, D)
        count, num_frames = frames.shape[:2]
        frames = torch.cat([frames, self.pred_vec.expand(count, 1, -1)], dim=1)
        frames = self.frame_fc(self.dropout(frames))  # (B, F + 1, H)
        frames_pad = torch.zeros(frames.shape[:2], dtype=torch.bool, device=device)
        frames_pad[:, -1] = True  # the prediction vector is a query, never a key

        ids, lengths = self.vocab.encode(batch["text"], o.max_words)  # (B, L)
        words = torch.cat([self.start_vec.expand(count, 1, -1),
                           self.word_vectors(ids.to(device))], dim=1)  # (B, L + 1, W)
        positions = sinusoids(words.shape[1], o.hidden).to(device)
        words = self.word_fc(self.dropout(words))  # (B, L + 1, H)
        words_pad = (torch.arange(words.shape[1])[None] >= (lengths + 1)[:, None]).to(device)

        # Gaussian proposals from the prediction vector after reading the sentence
        text = self.decoder2(words + positions, words_pad)
        h = self.decoder1(frames, frames_pad, text, words_pad)
        params = torch.sigmoid(self.fc_gauss(h[:, -1])).view(count * o.num_props, 2)
        center, width = params[:, 0], params[:, 1]

        # reconstruction of the masked sentence from each proposal's frames
        props_len = num_frames // o.props_stride
        keep = torch.linspace(0, num_frames - 1, props_len).long().to(device)
        frames, frames_pad = frames[:, keep], frames_pad[:, keep]
        props = frames.repeat_interleave(o.num_props, dim=0)  # (B P, Lp, H)
        props_pad = frames_pad.repeat_interleave(o.num_props, dim=0)
        gauss = gaussian_weights(props_len, center, width, o.sigma)  # (B P, Lp)
        masked = self.mask_words(words, ids, lengths, generator) + positions
        inputs, inputs_pad = masked[:, :-1], words_pad[:, :-1]  # word t predicts word t + 1
        inputs_p = inputs.repeat_interleave(o.num_props, dim=0)
        inputs_pad_p = inputs_pad.repeat_interleave(o.num_props, dim=0)

        def reconstruct(video: torch.Tensor, video_pad: torch.Tensor, text_in: torch.Tensor,
                        text_pad: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
            encoded = self.decoder1(video, video_pad, self_gauss=weight)
            return self.fc_comp(self.decoder2(text_in, text_pad, encoded, video_pad,
                                              memory_gauss=weight))

        out = {"logits": reconstruct(props, props_pad, inputs_p, inputs_pad_p, gauss),
               "ids": ids.to(device), "ids_mask": ~inputs_pad, "center": center,
               "width": width, "gauss": gauss}
        if negatives:
            left, right = negative_weights(props_len, center, width, self.epoch,
                                           max_epoch=o.max_epoch, gamma=o.gamma, sigma=o.sigma)
            out["neg_logits"] = [reconstruct(props, props_pad, inputs_p, inputs_pad_p, w)
                                 for w in (left, right)]
            out["ref_logits"] = reconstruct(frames, frames_pad, inputs, inputs_pad, None)
        return out

    def proposal_nll(self, out: dict[str, Any], logits: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` reconstruction loss of each proposal."""
        p = self.options.num_props
        nll = word_nll(logits, out["ids"].repeat_interleave(p, dim=0),
                       out["ids_mask"].repeat_interleave(p, dim=0), self.options.label_smoothing)
        return nll.view(-1, p)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.options
        out = self(batch, negatives=o.use_negative)
        nll = self.proposal_nll(out, out["logits"])
        ref = neg = None
        if o.use_negative:
            ref = word_nll(out["ref_logits"], out["ids"], out["ids_mask"], o.label_smoothing)
            neg = [self.proposal_nll(out, logits) for logits in out["neg_logits"]]
        return cpl_losses(nll, ref, neg or [], out["gauss"].view(nll.shape[0], o.num_props, -1),
                          margin_1=o.margin_1, margin_2=o.margin_2, lam=o.lam,
                          alpha_1=o.alpha_1, alpha_2=o.alpha_2)

    @torch.no_grad()
    def ground(self, batch: dict[str, Any]) -> list[list[Moment]]:
        generator = torch.Generator().manual_seed(self.options.inference_seed)
        out = self(batch, negatives=False, generator=generator)
        nll = self.proposal_nll(out, out["logits"]).cpu()  # (B, P)
        center = out["center"].view_as(nll).cpu()
        width = out["width"].view_as(nll).cpu()
        start = (center - width / 2).clamp(min=0)
        end = (center + width / 2).clamp(max=1)
        results = []
        for b in range(len(nll)):
            duration = float(batch["duration"][b])
            order = nll[b].double().numpy().argsort(kind="stable")
            results.append([(float(start[b, k]) * duration, float(end[b, k]) * duration,
                             -float(nll[b, k])) for k in order])
        return results


def build(*, feature_dim: int, vocab: list[str], **options: Any) -> Cpl:
    """CPL on ``feature_dim`` clip features with the vocabulary ``vocab``; ``options``: the
    fields of :class:`CplConfig`."""
    return Cpl(feature_dim=feature_dim, vocab=vocab, options=CplConfig(**options))


METHOD = Method(
    name="cpl", config=CplConfig, build=build, needs=("sentences",),
    summary="CPL, Gaussian proposals + masked-word reconstruction (Zheng et al., CVPR 2022); "
            "weak: video-sentence pairs",
    defaults={"train.optimizer": "adam", "train.lr": 4e-4, "train.weight_decay": 0.0,
              "train.lr_schedule": "inverse_sqrt", "train.warmup_updates": 400,
              "train.warmup_init_lr": 1e-7, "train.batch_size": 32, "train.epochs": 30,
              "train.grad_clip": 10.0, "post.nms_threshold": 1.0, "data.max_snippets": 0})
