"""Half-space projected training, shared by DHSPG (channels) and H2SPG (erasable segments).

After ``start_step`` a *penalised* set is fixed once (how is the subclass's business). While
fewer than the target number of groups are zero, every base step is followed, on the non-zero
penalised groups, by

1. a group-lasso step ``x_g -= lr * lambda_g * x_g / ||x_g||`` (``x_g``: the weights before the
   base step) whose ``lambda_g`` adapts so that the combined step stays a descent direction
   (``adaptive_lambda``), and
2. the half-space projection: ``x_g = 0`` when ``<x_g_new, x_g> < epsilon * ||x_g||^2``, i.e.
   when the step has carried the group most of the way to (or past) the origin.

Zero groups stay zero (weights and optimizer state). Only penalised groups can ever be zeroed.
Once the target is reached the penalty and projection stop. Every penalised step measures its
update direction, so until then a scratch copy of the grouped weights is kept; the inner
product the projection tests is derived from the step's group sums, not from another pass.
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
from trainonce.optim.sparse import GroupSparseOptimizer, StepSums

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


class HalfSpaceOptimizer(GroupSparseOptimizer):
    """Penalty + half-space projection on a penalised set chosen by ``_partition``."""

    def __init__(self, base: Optimizer, space: SearchSpace, *, start_step: int, pruning_steps: int, epsilon: float,
                 penalty: Penalty | None, nonfinite: str = "raise") -> None:
        super().__init__(base, space, nonfinite=nonfinite)
        if not 0.0 <= epsilon < 1.0:
            raise TrainonceError(f"epsilon must be in [0, 1), got {epsilon}")
        if start_step < 0:
            raise TrainonceError(f"start_step must be >= 0, got {start_step}")
        if not isinstance(pruning_steps, int) or pruning_steps < 1:
            raise TrainonceError(f"pruning_steps must be an integer >= 1, got {pruning_steps!r}")
        self.start_step = start_step
        self.end_step = start_step + pruning_steps
        self.epsilon = epsilon
        self.penalty = penalty or Penalty.default_for(base)

    def hyperparameters(self) -> dict[str, Any]:
        return {"start_step": self.start_step, "pruning_steps": self.end_step - self.start_step, "epsilon": self.epsilon,
                "penalty": [self.penalty.lmbda, self.penalty.amplify, self.penalty.cap]}

    @property
    def num_target(self) -> int:
        """How many groups must be zero before the penalty stops."""
        raise NotImplementedError

    def _partition(self, stats: GroupStatistics) -> None:
        """Fix ``state["penalised"]`` at ``start_step`` from the step's statistics."""
        raise NotImplementedError

    @property
    def penalising(self) -> bool:
        """Partitioned, the target not reached yet, and the schedule not over."""
        state = self.own_state
        return bool(state["partitioned"]) and int(state["zero"].sum()) < self.num_target and state["step"] < self.end_step

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        state = self.own_state
        partition = not state["partitioned"] and state["step"] >= self.start_step
        penalise = partition or self.penalising
        before = self.capture() if penalise else None
        loss = self.base_step(closure)
        if before is not None and self.step_taken:
            sums = self.step_sums(before)
            if partition:
                self._partition(sums.statistics)
                state["partitioned"] = True
            if state["step"] < self.end_step:
                self._penalise_and_project(before, sums)
        if state["partitioned"] and state["step"] + 1 >= self.end_step and int(state["zero"].sum()) < self.num_target:
            self._final_projection()
        if state["partitioned"] and not self.penalising:
            self.release_scratch()  # the target is reached: no more update directions to measure
        zero = state["zero"]
        if bool(zero.any()):  # hold: re-zero the weights after every base step
            self.multiply(zero)
        state["step"] += 1
        return loss

    def _final_projection(self) -> None:
        """The schedule ends: the penalised groups closest to zero are projected onto it, up to the target.

        Reaching the target must not depend on how fast the penalty converged (on another CPU the
        same run can land a step short), so the last step of the schedule finishes the job.
        """
        state = self.own_state
        missing = self.num_target - int(state["zero"].sum())
        open_groups = state["penalised"] & ~state["zero"]
        norms = self.index.squared_norms().masked_fill(~open_groups, float("inf"))
        chosen = torch.zeros(self.index.num_groups, dtype=torch.bool)
        chosen[torch.sort(norms, stable=True).indices[:missing]] = True
        chosen = self.agree(chosen & open_groups)
        self.scale_groups(chosen, 0.0)
        state["zero"] = state["zero"] | chosen

    def _penalise_and_project(self, before: list[torch.Tensor], sums: StepSums) -> None:
        state = self.own_state
        targets = state["penalised"] & ~state["zero"] & (sums.xx > 0)
        norm_x = sums.xx.clamp(min=0).sqrt()
        lam = adaptive_lambda(sums.xd, norm_x, sums.dd, self.penalty)
        scale = torch.where(targets, lam / norm_x.clamp(min=1e-12), torch.zeros_like(lam))
        self.add_to_groups(before, scale)
        # <x_new, x> per group without another pass: x_new = x_after - lr * scale * x on the targets
        inner = sums.xx - sums.moved - scale * sums.lr_xx
        projected = self.agree(targets & (inner < self.epsilon * sums.xx))
        if bool(projected.any()):
            self.scale_groups(projected, 0.0)  # state too, once
            state["zero"] = state["zero"] | projected

    def zero_mask(self) -> torch.Tensor:
        return self.own_state["zero"].clone()
