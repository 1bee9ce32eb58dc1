"""Selection by score with widths kept a multiple of ``divisible``; saliency criteria values."""

from __future__ import annotations

import torch

from trainonce.optim.saliency import DEFAULT_IMPORTANCE, GroupStatistics, criteria, saliency
from trainonce.optim.selection import removable_blocks, take_cost, take_count

SCORE = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 9.0, 8.0])
OWNER = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
ALL = torch.ones(8, dtype=torch.bool)


def ids(mask: torch.Tensor) -> list[int]:
    return torch.nonzero(mask).squeeze(1).tolist()


def test_lowest_scores_first_and_each_node_group_keeps_one() -> None:
    blocks = removable_blocks(SCORE, OWNER, ALL, 1)
    assert blocks.ids.tolist() == [5, 1, 3, 2, 4, 7]  # 0 and 6 are their node group's best: never offered
    assert ids(take_count(blocks, 4, 8)) == [1, 2, 3, 5]
    assert ids(take_count(blocks, 100, 8)) == [1, 2, 3, 4, 5, 7]


def test_divisible_blocks_round_by_score_not_by_index() -> None:
    blocks = removable_blocks(SCORE, OWNER, ALL, 2)
    assert blocks.size.tolist() == [2, 2]
    chosen = take_count(blocks, 3, 8)  # a quota of 3 with blocks of 2: the best block only
    assert ids(chosen) == [1, 3]
    already = ALL.clone()
    already[1] = False  # width 3 left in node group 0: first block is 3 % 2 = 1 channel
    blocks = removable_blocks(SCORE, OWNER, already, 2)
    assert blocks.size.tolist() == [1, 2]
    assert ids(take_count(blocks, 3, 8)) == [3, 4, 5]


def test_a_block_that_does_not_fit_stops_its_node_group_only() -> None:
    score = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 5.0, 6.0, 7.0])
    owner = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    blocks = removable_blocks(score, owner, torch.ones(9, dtype=torch.bool), 3)  # node group 1 width 3: nothing
    assert blocks.size.tolist() == [3]
    assert ids(take_count(blocks, 2, 9)) == []


def test_cost_prefix_reaches_the_need() -> None:
    cost = torch.tensor([1.0, 1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 10.0])
    blocks = removable_blocks(SCORE, OWNER, ALL, 1, cost)
    chosen = take_cost(blocks, cost, 12.0, 8)
    assert float(cost[chosen].sum()) >= 12.0
    # saliency per unit of cost: the expensive channels save most per unit of saliency lost
    assert ids(chosen) == [4, 5]


def test_criteria_values() -> None:
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    d = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    stats = GroupStatistics((x * x).sum(1).double(), (x * d).sum(1).double(), (d * d).sum(1).double(), torch.tensor([2.0, 2.0], dtype=torch.float64))
    raw = criteria(stats)
    assert raw["magnitude"].tolist() == [5.0, 1.0]
    assert raw["avg_magnitude"].tolist() == [2.5, 0.5]
    assert torch.allclose(raw["cosine"], torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert raw["taylor_first"].tolist() == [25.0, 0.0]
    assert raw["taylor_second"].tolist() == [312.5, 0.0]
    score = saliency(stats, DEFAULT_IMPORTANCE, torch.tensor([True, True]))
    assert score[1] < score[0]
    flipped = saliency(stats, {"cosine": -1.0}, torch.tensor([True, True]))
    assert flipped[0] < flipped[1]  # a negative weight: a high cosine counts as redundant
    assert torch.isinf(saliency(stats, DEFAULT_IMPORTANCE, torch.tensor([True, False]))[1])
