"""Training batch samplers beyond torch's shuffled batches."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch


def members(labels: Sequence[Hashable]) -> list[list[int]]:
    """The item indices of each distinct label, in order of first appearance."""
    out: dict[Hashable, list[int]] = {}
    for index, label in enumerate(labels):
        out.setdefault(label, []).append(index)
    return list(out.values())


class GroupBatches(torch.utils.data.Sampler):
    """Batches drawn one group at a time, as POC's official ``DataLoader_GroupSample`` draws
    them (one Breakfast activity per batch, so that its videos share action pairs): pick a
    group uniformly at random, then ``min(batch_size, group size)`` of its items without
    replacement; an epoch ends once as many items as the dataset holds have been drawn (some
    items twice, some not at all). ``groups[i]`` is item i's group; ``generator`` is the
    loop's shuffling generator, so a resumed run draws the same batches."""

    def __init__(self, groups: Sequence[Hashable], batch_size: int,
                 generator: torch.Generator):
        self.batch_size, self.generator, self.total = batch_size, generator, len(groups)
        self.members = members(groups)

    def __iter__(self) -> Iterator[list[int]]:
        drawn = 0
        while drawn < self.total:
            pick = int(torch.randint(len(self.members), (1,), generator=self.generator))
            group = self.members[pick]
            order = torch.randperm(len(group), generator=self.generator)[:self.batch_size]
            drawn += len(order)
            yield [group[i] for i in order.tolist()]

    def __len__(self) -> int:  # an estimate: the batch count varies with the groups drawn
        return (self.total + self.batch_size - 1) // self.batch_size


class VideoBatches(torch.utils.data.Sampler):
    """Batches of ``batch_size`` videos with all their items (a grounding item is one sentence),
    as MMN's and D3G's official loaders batch Charades-STA: the videos are shuffled each epoch
    and every video is drawn once. ``videos[i]`` is item i's video."""

    def __init__(self, videos: Sequence[Hashable], batch_size: int,
                 generator: torch.Generator):
        self.batch_size, self.generator = batch_size, generator
        self.members = members(videos)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.members), generator=self.generator).tolist()
        for start in range(0, len(order), self.batch_size):
            yield [i for v in order[start:start + self.batch_size] for i in self.members[v]]

    def __len__(self) -> int:
        return (len(self.members) + self.batch_size - 1) // self.batch_size
