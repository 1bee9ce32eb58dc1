"""DHSPG: group-lasso steps with an adaptive, descent-preserving penalty and half-space projection.

Schedule (ALGORITHMS.md §2.3): at ``start_step`` the groups are partitioned once, by redundancy
``0.5 * cos(x_g, d_g) + 0.5 * n_g / ||x_g||`` (each term normalised over the groups), into a
penalised set G_p of ``floor(N * min(s + tolerance, 0.999))`` groups and the rest; the penalty
and projection (``trainonce.optim.halfspace``) then run on G_p until ``floor(N * s)`` groups are
zero. G_p keeps the best channel of every node group, so the final sparsity is in
``[s, s + tolerance]`` and no node group is emptied.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.optim.halfspace import HalfSpaceOptimizer, Penalty, redundancy
from trainonce.optim.saliency import GroupStatistics
from trainonce.optim.selection import removable_blocks, take_count


class DHSPG(HalfSpaceOptimizer):
    """Dual half-space projected gradient on top of ``base`` (any ``torch.optim`` optimizer).

    ``penalty`` defaults to the reference values for the kind of base optimizer.
    """

    STATE_KEY = "dhspg"

    def __init__(self, base: Optimizer, space: SearchSpace, target_sparsity: float, *, start_step: int = 0,
                 pruning_steps: int, tolerance: float = 0.05, epsilon: float = 0.9, penalty: Penalty | None = None,
                 nonfinite: str = "raise") -> None:
        super().__init__(base, space, start_step=start_step, pruning_steps=pruning_steps, epsilon=epsilon,
                         penalty=penalty, nonfinite=nonfinite)
        if not 0.0 < target_sparsity < 1.0:
            raise TrainonceError(f"target_sparsity must be in (0, 1), got {target_sparsity}")
        if not 0.0 <= tolerance < 1.0:
            raise TrainonceError(f"tolerance must be in [0, 1), got {tolerance}")
        n = self.index.num_groups
        self.target_sparsity, self.tolerance = target_sparsity, tolerance
        self._num_target = int(n * target_sparsity)
        self.num_penalised = int(n * min(target_sparsity + tolerance, 0.999))
        removable = n - len(self.index.node_groups)
        if self._num_target == 0:
            raise TrainonceError(f"target_sparsity={target_sparsity} of N={n} groups removes nothing; raise it")
        if self._num_target > removable:
            raise TrainonceError(f"target_sparsity={target_sparsity} asks for {self._num_target} of {n} groups, but at most "
                                 f"{removable} can go while every node group keeps a channel")
        self.new_state(penalised=torch.zeros(n, dtype=torch.bool), zero=torch.zeros(n, dtype=torch.bool), partitioned=False)

    @property
    def num_target(self) -> int:
        return self._num_target

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "target_sparsity": self.target_sparsity, "tolerance": self.tolerance}

    def _partition(self, stats: GroupStatistics) -> None:
        """G_p: the most redundant groups, never a node group's last channel."""
        blocks = removable_blocks(-redundancy(stats), self.index.owner, torch.ones(self.index.num_groups, dtype=torch.bool), 1)
        self.own_state["penalised"] = self.agree(take_count(blocks, self.num_penalised, self.index.num_groups))
