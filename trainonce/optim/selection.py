"""Choosing which groups to remove: strictly by score, widths kept a multiple of ``divisible``.

Within a node group the removable channels are cut into *blocks*: with remaining width ``w``
and ``divisible = q``, the first block takes ``w mod q`` channels (or ``q``) and each further
block ``q``, and the last ``q`` channels are never offered, so a node group is never emptied
and every reachable width is a multiple of ``q``. A block holds the lowest-score channels not
taken yet, and its key is their mean score, so keys never decrease inside a node group and a
global stable sort by key visits each node group's blocks in order. Selection walks that order.
Everything is vectorised: no Python loop over channels (a Llama-7B space has 353k groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Blocks:
    """Removable blocks in global order (best candidates first)."""

    ids: torch.Tensor  # global group ids, block after block
    size: torch.Tensor  # channels in each block
    owner: torch.Tensor  # node group of each block

    def __len__(self) -> int:
        return len(self.size)


def removable_blocks(score: torch.Tensor, owner: torch.Tensor, alive: torch.Tensor, divisible: int,
                     cost: torch.Tensor | None = None) -> Blocks:
    """Blocks of the ``alive`` (not yet chosen) groups, sorted by key.

    The key is the mean score of the block, or with ``cost`` the (positive-shifted) score per
    unit of cost, which is how a FLOPs or parameter budget is spent on the least salient work.
    """
    ids = torch.nonzero(alive).squeeze(1)
    if len(ids) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return Blocks(empty, empty, empty)
    by_score = ids[torch.sort(score[ids], stable=True).indices]
    ordered = by_score[torch.sort(owner[by_score], stable=True).indices]  # grouped by owner, ascending score
    owners, width = torch.unique_consecutive(owner[ordered], return_counts=True)
    segment = torch.repeat_interleave(torch.arange(len(owners)), width)
    rank = torch.arange(len(ordered)) - (torch.cumsum(width, 0) - width)[segment]
    w = width[segment]
    first = torch.where(w % divisible == 0, torch.full_like(w, divisible), w % divisible)
    block_in_owner = torch.where(rank < first, 0, 1 + torch.div(rank - first, divisible, rounding_mode="floor"))
    removable = rank < w - divisible
    ordered, segment, block_in_owner = ordered[removable], segment[removable], block_in_owner[removable]
    # (owner, block) pairs are already in lexicographic order: number them consecutively
    new_block = torch.ones(len(ordered), dtype=torch.bool)
    new_block[1:] = (segment[1:] != segment[:-1]) | (block_in_owner[1:] != block_in_owner[:-1])
    block = torch.cumsum(new_block.long(), 0) - 1
    num_blocks = int(block[-1]) + 1 if len(block) else 0
    size = torch.zeros(num_blocks, dtype=torch.long).index_add_(0, block, torch.ones_like(block))
    values = score[ordered].double()
    if cost is not None:
        values = values - score[ids].double().min() + 1e-12
    total = torch.zeros(num_blocks, dtype=torch.float64).index_add_(0, block, values)
    if cost is None:
        key = total / size
    else:
        spent = torch.zeros(num_blocks, dtype=torch.float64).index_add_(0, block, cost[ordered].double())
        key = total / spent.clamp(min=1e-12)
    order = torch.sort(key, stable=True).indices
    rank_of_block = torch.empty_like(order)
    rank_of_block[order] = torch.arange(num_blocks)
    element_order = torch.sort(rank_of_block[block], stable=True).indices
    return Blocks(ordered[element_order], size[order], owners[segment[new_block]][order])


def take_count(blocks: Blocks, quota: int, num_groups: int) -> torch.Tensor:
    """The best blocks whose sizes add up to at most ``quota`` channels (exactly, when all are 1)."""
    chosen = torch.zeros(num_groups, dtype=torch.bool)
    if quota <= 0 or len(blocks) == 0:
        return chosen
    if bool((blocks.size == 1).all()):
        chosen[blocks.ids[:quota]] = True
        return chosen
    starts = (torch.cumsum(blocks.size, 0) - blocks.size).tolist()
    left, blocked = quota, set()
    for start, size, j in zip(starts, blocks.size.tolist(), blocks.owner.tolist(), strict=True):
        if left == 0:
            break
        if j in blocked:
            continue
        if size <= left:
            chosen[blocks.ids[start:start + size]] = True
            left -= size
        else:
            blocked.add(j)  # later blocks of this node group must not jump over this one
    return chosen


def take_cost(blocks: Blocks, cost: torch.Tensor, need: float, num_groups: int) -> torch.Tensor:
    """The shortest prefix of blocks whose estimated cost reaches ``need``."""
    chosen = torch.zeros(num_groups, dtype=torch.bool)
    if need <= 0 or len(blocks) == 0:
        return chosen
    cumulative = torch.cumsum(cost[blocks.ids].double(), 0)
    ends = torch.cumsum(blocks.size, 0) - 1
    reached = torch.nonzero(cumulative[ends] >= need)
    stop = int(ends[int(reached[0])]) + 1 if len(reached) else len(blocks.ids)
    chosen[blocks.ids[:stop]] = True
    return chosen
