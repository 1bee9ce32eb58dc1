"""DHSPG: group-lasso steps with an adaptive, descent-preserving penalty and half-space projection.

Schedule (ALGORITHMS.md §2.3): at ``start_step`` the groups are partitioned once, by redundancy
``0.5 * cos(x_g, d_g) + 0.5 * n_g / ||x_g||`` (each term normalised over the groups), into a
penalised set G_p of ``floor(N * min(s + tolerance, 0.999))`` groups and the rest. From then on,
while fewer than ``floor(N * s)`` groups are zero, every step of the base optimizer is followed,
on the non-zero groups of G_p, by

1. a group-lasso step ``x_g -= lr * lambda_g * x_g / ||x_g||`` (``x_g``: the weights before the
   base step) whose ``lambda_g`` adapts so that the combined step stays a descent direction
   (``adaptive_lambda``), and
2. the half-space projection: ``x_g = 0`` when ``<x_g_new, x_g> < epsilon * ||x_g||^2``, i.e.
   when the step has carried the group most of the way to (or past) the origin.

Zero groups stay zero (weights and optimizer state). Only G_p can ever be zeroed, and G_p keeps
the best channel of every node group, so the final sparsity is in ``[s, s + tolerance]`` and no
node group is emptied. Once the target is reached the penalty and projection stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.optim.saliency import GroupStatistics
from trainonce.optim.selection import removable_blocks, take_count
from trainonce.optim.sparse import GroupSparseOptimizer

_ADAPTIVE_BASES = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adamax)


@dataclass(frozen=True)
class Penalty:
    """``lambda`` (base strength), ``amplify`` (``a``) and ``cap`` (``c``) of the adaptive rule."""

    lmbda: float
    amplify: float
    cap: float

    @staticmethod
    def default_for(base: Optimizer) -> Penalty:
        """The reference defaults: adaptive-moment bases take steps of a different scale."""
        return Penalty(1e-2, 20.0, 1e3) if isinstance(base, _ADAPTIVE_BASES) else Penalty(1e-3, 2.0, 10.0)


def adaptive_lambda(xd: torch.Tensor, norm_x: torch.Tensor, dd: torch.Tensor, penalty: Penalty) -> torch.Tensor:
    """Per-group ``lambda_g``.

    When ``<x_g, d_g> < 0`` the base step grows the group; a penalty above
    ``upper = -||d||^2 ||x|| / <x, d>`` would make ``d + lambda x/||x||`` an ascent direction,
    and one below ``lower = -<x, d> / ||x||`` would not shrink the group at all. So
    ``lambda_g = clip(a * lower, lambda, c * lambda)``, replaced by ``(lower + upper) / 2`` when
    that reaches ``upper``. Otherwise the base step already shrinks the group: ``lambda``.
    """
    growing = xd < 0
    safe_x = norm_x.clamp(min=1e-12)
    safe_xd = torch.where(growing, xd, -torch.ones_like(xd))
    lower = -safe_xd / safe_x
    upper = -dd * safe_x / safe_xd
    clipped = (penalty.amplify * lower).clamp(min=penalty.lmbda, max=penalty.cap * penalty.lmbda)
    adapted = torch.where(clipped >= upper, (lower + upper) / 2, clipped)
    return torch.where(growing, adapted, torch.full_like(xd, penalty.lmbda))


def redundancy(stats: GroupStatistics) -> torch.Tensor:
    """The partition score (higher = more redundant): cosine and inverse average magnitude."""
    norm_x = stats.xx.clamp(min=0).sqrt()
    cosine = stats.xd / (norm_x * stats.dd.clamp(min=0).sqrt()).clamp(min=1e-12)
    inverse_magnitude = stats.numel / norm_x.clamp(min=1e-12)
    return 0.5 * cosine / cosine.norm().clamp(min=1e-12) + 0.5 * inverse_magnitude / inverse_magnitude.norm().clamp(min=1e-12)


class DHSPG(GroupSparseOptimizer):
    """Dual half-space projected gradient on top of ``base`` (any ``torch.optim`` optimizer).

    ``penalty`` defaults to the reference values for the kind of base optimizer.
    """

    STATE_KEY = "dhspg"

    def __init__(self, base: Optimizer, space: SearchSpace, target_sparsity: float, *, start_step: int = 0,
                 tolerance: float = 0.05, epsilon: float = 0.9, penalty: Penalty | None = None) -> None:
        super().__init__(base, space)
        if not 0.0 < target_sparsity < 1.0:
            raise TrainonceError(f"target_sparsity must be in (0, 1), got {target_sparsity}")
        if not 0.0 <= tolerance < 1.0:
            raise TrainonceError(f"tolerance must be in [0, 1), got {tolerance}")
        if not 0.0 <= epsilon < 1.0:
            raise TrainonceError(f"epsilon must be in [0, 1), got {epsilon}")
        if start_step < 0:
            raise TrainonceError(f"start_step must be >= 0, got {start_step}")
        n = self.index.num_groups
        self.num_target = int(n * target_sparsity)
        self.num_penalised = int(n * min(target_sparsity + tolerance, 0.999))
        removable = n - len(self.index.node_groups)
        if self.num_target == 0:
            raise TrainonceError(f"target_sparsity={target_sparsity} of N={n} groups removes nothing; raise it")
        if self.num_target > removable:
            raise TrainonceError(f"target_sparsity={target_sparsity} asks for {self.num_target} of {n} groups, but at most "
                                 f"{removable} can go while every node group keeps a channel")
        self.start_step = start_step
        self.epsilon = epsilon
        self.penalty = penalty or Penalty.default_for(base)
        self.new_state(penalised=torch.zeros(n, dtype=torch.bool), zero=torch.zeros(n, dtype=torch.bool))

    @property
    def penalising(self) -> bool:
        """Partitioned, and the target not reached yet."""
        state = self.own_state
        return state["step"] > self.start_step and int(state["zero"].sum()) < self.num_target

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        state = self.own_state
        partition = state["step"] == self.start_step
        penalise = partition or self.penalising
        before = self.snapshot() if penalise else None
        loss = self.base_step(closure)
        if before is not None:
            stats = self.statistics(before)
            if partition:
                self._partition(stats)
            self._penalise_and_project(before, stats)
        zero = state["zero"]
        if bool(zero.any()):  # hold: re-zero the weights after every base step
            self.multiply_groups(torch.where(zero, 0.0, 1.0).double())
        state["step"] += 1
        return loss

    def _partition(self, stats: GroupStatistics) -> None:
        """G_p: the most redundant groups, never a node group's last channel."""
        blocks = removable_blocks(-redundancy(stats), self.index.owner, torch.ones(self.index.num_groups, dtype=torch.bool), 1)
        self.own_state["penalised"] = self.agree(take_count(blocks, self.num_penalised, self.index.num_groups))

    def _penalise_and_project(self, before: list[torch.Tensor], stats: GroupStatistics) -> None:
        state = self.own_state
        targets = state["penalised"] & ~state["zero"] & (stats.xx > 0)
        norm_x = stats.xx.clamp(min=0).sqrt()
        lam = adaptive_lambda(stats.xd, norm_x, stats.dd, self.penalty)
        scale = torch.where(targets, lam / norm_x.clamp(min=1e-12), torch.zeros_like(lam))
        lr = self.lr_of()
        agreement = []
        for rows, x in zip(self.index.rows, before, strict=True):
            coefficient = scale[rows.gid.clamp(min=0).cpu()].to(x.dtype).to(x.device) * (rows.gid >= 0) * lr[id(rows.param)]
            shape = [1] * x.ndim
            shape[rows.dim] = -1
            rows.param.data.sub_(coefficient.view(shape) * x)
            agreement.append((rows.per_position(rows.param.detach()).float() * rows.per_position(x).float()).sum(1))
        inner = self.index.scatter(agreement)
        projected = self.agree(targets & (inner < self.epsilon * stats.xx))
        if bool(projected.any()):
            self.scale_groups(projected, 0.0)  # state too, once
            state["zero"] = state["zero"] | projected

    def zero_mask(self) -> torch.Tensor:
        return self.own_state["zero"].clone()
