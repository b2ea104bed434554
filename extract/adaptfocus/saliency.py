"""Action Saliency Estimation (ASE, paper Section 3.3).

One column per action instance, i.e. per (video, class) pair of a video's labels. Row 0 holds the
position lambda (clip-centre time, seconds), row 1 the spike-actionness a (a probability); both
start at 0 (Section 4.1). The paper's state is exactly this (2, D) tensor.

* Online estimation (Eq. 3), from the clips sampled in training:
  lambda = t if p > a;  a = max(a, p).
* Naive estimation (Eq. 2), from inference on all clips of a video:
  lambda = argmax_t p_t;  a = max_t p_t.

Under DDP every rank gathers all ranks' updates (all_gather) and applies them in rank order, so
the state stays identical everywhere without a broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

POSITION, SPIKE = 0, 1


class ActionSaliency:
    """ASE state for a fixed list of training videos and their positive classes.

    ``videos``: (video_id, class indices of its video-level labels) per training video; the
    position of a video in this list is its ``video_index`` everywhere else.
    """

    def __init__(self, videos: Sequence[tuple[str, Sequence[int]]], num_classes: int):
        self.video_ids = [vid for vid, _ in videos]
        self.num_classes = num_classes
        # (V, K) long: column of (video, class) in the state, -1 where the class is not a label.
        self.column_of = torch.full((len(videos), num_classes), -1, dtype=torch.long)
        column = 0
        for v, (_, classes) in enumerate(videos):
            for k in sorted({int(c) for c in classes}):
                self.column_of[v, k] = column
                column += 1
        self.state = torch.zeros(2, column, dtype=torch.float64)  # (2, D): lambda, a

    @property
    def num_instances(self) -> int:
        return self.state.shape[1]

    def index(self) -> dict[tuple[str, int], int]:
        """(video_id, class index) -> column."""
        rows, cols = torch.nonzero(self.column_of >= 0, as_tuple=True)
        return {(self.video_ids[int(v)], int(k)): int(self.column_of[v, k])
                for v, k in zip(rows, cols)}

    # --- reading -----------------------------------------------------------------------------

    def lookup(self, video_index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Positions, spike-actionness and a validity mask, each (B, K) for videos (B,).

        Classes that are not labels of the video read position 0, spike 0, valid False.
        """
        cols = self.column_of[video_index.cpu()]  # (B, K)
        valid = cols >= 0
        safe = cols.clamp(min=0)
        position = torch.where(valid, self.state[POSITION][safe], 0.0)
        spike = torch.where(valid, self.state[SPIKE][safe], 0.0)
        return position, spike, valid

    # --- updating ----------------------------------------------------------------------------

    def update_online(self, video_index: Tensor, times: Tensor, probs: Tensor) -> int:
        """Eq. 3 for a batch: ``video_index`` (B,), clip-centre ``times`` (B,) s, ``probs`` (B, K).

        Under torch.distributed every rank's batch is gathered first and applied in rank order.
        Returns the number of instances whose position changed (all ranks).
        """
        video_index, times, probs = _gather_rows(video_index, times, probs.detach())
        cols = self.column_of[video_index]  # (N, K)
        valid = cols >= 0
        flat_cols = cols[valid]  # (M,), row-major: the order in which clips arrived
        flat_p = probs.to(self.state.dtype)[valid]
        flat_t = times.to(self.state.dtype).reshape(-1, 1).expand_as(cols)[valid]
        # Applying Eq. 3 clip after clip ends with a = max(a, all p) and lambda at the first clip
        # that reached that maximum, if it beats the old a (strict >): computed at once here.
        best = torch.full((self.num_instances,), -torch.inf, dtype=self.state.dtype)
        best.scatter_reduce_(0, flat_cols, flat_p, reduce="amax")
        reached = flat_p == best[flat_cols]
        order = torch.arange(len(flat_cols))
        first = torch.full((self.num_instances,), len(flat_cols), dtype=torch.long)
        first.scatter_reduce_(0, flat_cols[reached], order[reached], reduce="amin")
        improved = torch.nonzero(best > self.state[SPIKE]).flatten()
        self.state[POSITION, improved] = flat_t[first[improved]]
        self.state[SPIKE, improved] = best[improved]
        return len(improved)

    def set_naive(self, video_index: int, times: Tensor, probs: Tensor) -> None:
        """Eq. 2 for one video from all its clips: ``times`` (T,) s, ``probs`` (T, K)."""
        cols = self.column_of[video_index]
        valid = torch.nonzero(cols >= 0).flatten()
        best = probs[:, valid].to(self.state.dtype).max(dim=0)
        self.state[POSITION, cols[valid]] = times.to(self.state.dtype)[best.indices]
        self.state[SPIKE, cols[valid]] = best.values

    def decay(self, factor: float) -> None:
        """Remedy option: shrink every spike-actionness so that a stale maximum can be replaced."""
        self.state[SPIKE] *= factor

    # --- diagnostics -------------------------------------------------------------------------

    def success_ratio(self, intervals: Mapping[tuple[str, int], Sequence[tuple[float, float]]]
                      ) -> float:
        """Fraction of instances whose position lies inside one of its true intervals (Fig. S4,
        top-1 of the ASE). ``intervals``: (video_id, class) -> [(start, end)] seconds."""
        hits, total = 0, 0
        for (vid, k), col in self.index().items():
            spans = intervals.get((vid, k))
            if not spans:
                continue
            total += 1
            lam = float(self.state[POSITION, col])
            hits += any(start <= lam <= end for start, end in spans)
        return hits / total if total else float("nan")

    # --- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.clone(), "video_ids": list(self.video_ids),
                "column_of": self.column_of.clone()}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        if list(saved["video_ids"]) != self.video_ids or not torch.equal(saved["column_of"],
                                                                          self.column_of):
            raise ValueError("ASE state in the checkpoint belongs to other training videos or "
                             "labels than the current manifest")
        self.state = saved["state"].clone().to(torch.float64)


def _gather_rows(video_index: Tensor, times: Tensor, probs: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate (video_index, time, probs) rows of all ranks in rank order (CPU tensors)."""
    packed = torch.cat([video_index.detach().double().reshape(-1, 1).cpu(),
                        times.detach().double().reshape(-1, 1).cpu(),
                        probs.detach().double().cpu()], dim=1)  # (B, 2 + K)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend() == "nccl" else torch.device("cpu")
        local = packed.to(device)
        sizes = [torch.zeros(1, dtype=torch.long, device=device)
                 for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, torch.tensor([local.shape[0]], device=device))
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, local.shape[1], dtype=local.dtype, device=device)
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        packed = torch.cat([part[: int(n.item())] for part, n in zip(parts, sizes)]).cpu()
    return packed[:, 0].long(), packed[:, 1], packed[:, 2:]
