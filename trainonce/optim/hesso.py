"""HESSO: train with any optimizer and remove the least salient groups, period by period.

Schedule (ALGORITHMS.md §2.1): pruning starts at ``start_step`` and lasts ``periods`` periods
of ``L = pruning_steps // periods`` steps. At the first step of each period the period's quota
of not-yet-chosen groups with the lowest saliency is chosen, globally. Every step of the period
runs the base optimizer on *all* parameters and then multiplies the chosen groups by
``(L - tau - 1) / (L - tau)``: their norm falls linearly and is exactly zero after the period's
last step, while their gradient steps keep moving knowledge into the survivors. Groups of
earlier periods are held at exactly zero, with their optimizer state (momentum, Adam moments)
zeroed. After the last period exactly ``K = floor(N * target_sparsity)`` groups are zero and
training goes on with the plain base optimizer (plus the hold).

All decisions live in ``self.state["hesso"]`` (step counter, the period each group was chosen
in, the last scores), so ``state_dict()`` / ``load_state_dict()`` resume bit for bit. From the
first selection to the last, a scratch copy of the grouped weights (the weights before a
selection step, to measure its update direction) is kept; the other steps cost one pass over
the weights that hold chosen groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.optim.budget import CostModel, check_reachable, one_target
from trainonce.optim.saliency import check_importance, saliency
from trainonce.optim.selection import removable_blocks, take_cost, take_count
from trainonce.optim.sparse import GroupSparseOptimizer

NOT_CHOSEN = -1


@dataclass(frozen=True)
class Schedule:
    """When each period starts and how far into it a step is."""

    start: int
    length: int
    periods: int

    @property
    def end(self) -> int:
        """First step after the last period."""
        return self.start + self.length * self.periods

    def phase(self, step: int) -> tuple[int, int] | None:
        """(period, steps since the period started) inside the pruning window, else None."""
        if not self.start <= step < self.end:
            return None
        return divmod(step - self.start, self.length)


@dataclass(frozen=True)
class HESSOMetrics:
    """Progress of the pruning, for logs and plots."""

    step: int
    period: int  # periods started so far
    num_groups: int  # N
    num_chosen: int  # chosen so far (decaying or zero)
    num_zero_groups: int  # held at exactly zero
    group_sparsity: float  # num_zero_groups / N
    norm_redundant: float  # L2 norm over all chosen groups
    norm_important: float  # L2 norm over the other groups


class HESSO(GroupSparseOptimizer):
    """Half-space-free, hybrid structured sparse optimizer on top of ``base``.

    ``base``: any ``torch.optim`` optimizer over the model's parameters; schedulers keep
    working on it. ``space``: from ``trainonce.analyze`` on the same model. Give exactly one
    target: ``target_sparsity`` (fraction of the N groups), ``target_params`` or
    ``target_flops`` (fraction of the model's parameters / MACs to remove; groups are then
    chosen by saliency per unit of cost). ``importance`` overrides the criterion weights (see
    ``trainonce.optim.saliency``). ``group_divisible`` keeps every width a multiple of it.
    """

    STATE_KEY = "hesso"
    supports_erasing = True

    def __init__(self, base: Optimizer, space: SearchSpace, target_sparsity: float | None = None, *,
                 start_step: int = 0, pruning_steps: int, periods: int = 10,
                 importance: Mapping[str, float] | None = None, group_divisible: int = 1,
                 target_params: float | None = None, target_flops: float | None = None, nonfinite: str = "raise") -> None:
        super().__init__(base, space, nonfinite=nonfinite)
        self.target_name, self.target = one_target(target_sparsity=target_sparsity, target_params=target_params,
                                                   target_flops=target_flops)
        if periods < 1:
            raise TrainonceError(f"periods must be >= 1, got {periods}")
        if pruning_steps < periods:
            raise TrainonceError(f"pruning_steps ({pruning_steps}) must be >= periods ({periods}): each period needs at least one step")
        if start_step < 0:
            raise TrainonceError(f"start_step must be >= 0, got {start_step}")
        if group_divisible < 1:
            raise TrainonceError(f"group_divisible must be >= 1, got {group_divisible}")
        self.schedule = Schedule(start_step, pruning_steps // periods, periods)
        self.pruning_steps = pruning_steps
        self.weights = check_importance(importance)
        self.divisible = group_divisible
        self.erasing = space.erasing
        budget = self.target_name != "target_sparsity"
        self.cost = CostModel(self.index, self.target_name.removeprefix("target_")) if budget and self.erasing is None else None
        self.num_target = 0 if budget else self._count_target()
        if budget:
            kind = self.target_name.removeprefix("target_")
            if self.cost is not None:
                alive = torch.ones(self.index.num_groups, dtype=torch.bool)
                everything = take_count(removable_blocks(torch.zeros(self.index.num_groups), self.index.owner, alive,
                                                         self.divisible), self.index.num_groups, self.index.num_groups)
                check_reachable(self.target_name, self.target, self.cost.removed(everything), self.cost.total,
                                f"while every node group keeps at least group_divisible={self.divisible} channels")
            else:
                assert self.erasing is not None
                check_reachable(self.target_name, self.target, self.erasing.saved(list(range(self.index.num_groups)), kind),
                                self.erasing.total(kind), "even if every erasable segment went")
        self.new_state(period_of=torch.full((self.index.num_groups,), NOT_CHOSEN, dtype=torch.long),
                       scores=torch.zeros(self.index.num_groups, dtype=torch.float64))

    def hyperparameters(self) -> dict[str, Any]:
        return {self.target_name: self.target, "start_step": self.schedule.start, "pruning_steps": self.pruning_steps,
                "periods": self.schedule.periods, "importance": dict(self.weights), "group_divisible": self.divisible}

    # -- set-up -----------------------------------------------------------------------------
    def _count_target(self) -> int:
        """K = floor(N * s); a clear error if widths cannot shrink that far."""
        sizes = torch.tensor([g.size for g in self.index.node_groups])
        removable = int(torch.where(sizes > self.divisible, sizes - self.divisible, 0).sum())
        if self.erasing is not None:  # segments: connectivity, not widths, limits what can go
            removable = self.index.num_groups
        k = int(self.index.num_groups * self.target)
        if k > removable:
            raise TrainonceError(
                f"target_sparsity={self.target} asks for {k} of {self.index.num_groups} groups, but at most {removable} can go "
                f"while every node group keeps at least group_divisible={self.divisible} channels")
        if k == 0:
            raise TrainonceError(f"target_sparsity={self.target} of N={self.index.num_groups} groups removes nothing; raise it")
        return k

    # -- the step ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        state = self.own_state
        step = state["step"]
        phase = self.schedule.phase(step)
        pending = bool(state.get("selection_pending", False))
        selecting = (phase is not None and phase[1] == 0) or pending
        before = self.capture() if selecting else None
        loss = self.base_step(closure)
        if before is not None:
            if self.step_taken:
                # a selection deferred past the window (every later step skipped) zeroes at once
                late = phase is None
                period = self.schedule.periods - 1 if late else phase[0]  # type: ignore[index]
                chosen = self._select(period, before)
                state["selection_pending"] = False
                if late:
                    self.scale_groups(chosen, 0.0)
                if period == self.schedule.periods - 1:
                    self.release_scratch()  # the last selection: no more update directions to measure
            else:  # no update direction to score with: select at the next step that is taken
                state["selection_pending"] = True
        self._apply_schedule(step)
        state["step"] = step + 1
        return loss

    def _select(self, period: int, before: list[torch.Tensor]) -> torch.Tensor:
        """Score the groups with this step's update direction and choose the period's quota (returned)."""
        state = self.own_state
        period_of = state["period_of"]
        stats = self.statistics(before)
        alive = period_of == NOT_CHOSEN
        scores = saliency(stats, self.weights, alive)
        state["scores"] = scores
        chosen = self.agree(self._choose(scores, alive, period))
        period_of[chosen] = period
        return chosen

    def _choose(self, scores: torch.Tensor, alive: torch.Tensor, period: int) -> torch.Tensor:
        """This period's groups: the quota that brings the cumulative total to its target."""
        fraction_done = (period + 1) / self.schedule.periods
        n = self.index.num_groups
        if self.erasing is not None:
            return self._choose_segments(scores, alive, period)
        if self.cost is None:
            per_period = self.num_target // self.schedule.periods
            goal = self.num_target if period == self.schedule.periods - 1 else per_period * (period + 1)
            blocks = removable_blocks(scores, self.index.owner, alive, self.divisible)
            return take_count(blocks, goal - int((~alive).sum()), n)
        goal_cost = self.target * self.cost.total * fraction_done
        chosen = torch.zeros(n, dtype=torch.bool)
        for _ in range(64):  # linear costs overestimate overlapping savings: re-measure and top up
            need = goal_cost - self.cost.removed(~alive | chosen)
            if need <= 0:
                break
            blocks = removable_blocks(scores, self.index.owner, alive & ~chosen, self.divisible, self.cost.per_group)
            more = take_cost(blocks, self.cost.per_group, need, n)
            if not bool(more.any()):
                break
            chosen |= more
        return chosen

    def _choose_segments(self, scores: torch.Tensor, alive: torch.Tensor, period: int) -> torch.Tensor:
        """Erase mode: lowest scores first, each accepted only if the network stays connected."""
        assert self.erasing is not None
        gone = torch.nonzero(~alive).squeeze(1).tolist()
        ids = torch.nonzero(alive).squeeze(1)
        order = ids[torch.sort(scores[ids], stable=True).indices].tolist()
        if self.target_name == "target_sparsity":
            per_period = self.num_target // self.schedule.periods
            goal = self.num_target if period == self.schedule.periods - 1 else per_period * (period + 1)
            accepted = self.erasing.select(order, gone, limit=max(0, goal - len(gone)))
        else:
            kind = self.target_name.removeprefix("target_")
            need = self.target * self.erasing.total(kind) * (period + 1) / self.schedule.periods
            accepted = self.erasing.select(order, gone, need=need, cost=kind)
        chosen = torch.zeros(self.index.num_groups, dtype=torch.bool)
        chosen[accepted] = True
        return chosen

    def _apply_schedule(self, step: int) -> None:
        """After the base step: decay this period's groups, hold earlier ones at zero, in one pass."""
        if step < self.schedule.start:
            return
        period_of = self.own_state["period_of"]
        phase = self.schedule.phase(step)
        period = phase[0] if phase is not None else self.schedule.periods
        held = (period_of != NOT_CHOSEN) & (period_of < period)
        if phase is None:
            if bool(held.any()):
                self.multiply(held)
            return
        length, tau = self.schedule.length, phase[1]
        factor = (length - tau - 1) / (length - tau)
        decaying = period_of == period
        if bool(held.any()) or bool(decaying.any()):
            # the period's last step (factor 0): its groups reach exactly zero, optimizer state included
            self.multiply(held, decaying, factor, with_state=factor == 0.0)

    # -- results ----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """All periods are over: the sparsity target is reached and held."""
        return self.own_state["step"] >= self.schedule.end

    def zero_mask(self) -> torch.Tensor:
        step = self.own_state["step"]
        period_of = self.own_state["period_of"]
        done = min(self.schedule.periods, max(0, step - self.schedule.start) // self.schedule.length)
        return (period_of != NOT_CHOSEN) & (period_of < done)

    def metrics(self) -> HESSOMetrics:
        state = self.own_state
        chosen = state["period_of"] != NOT_CHOSEN
        zero = self.zero_mask()
        squares = self.index.squared_norms()
        step = state["step"]
        length = self.schedule.length
        started = min(self.schedule.periods, (max(0, step - self.schedule.start) + length - 1) // length)
        return HESSOMetrics(
            step=step,
            period=started,
            num_groups=self.index.num_groups,
            num_chosen=int(chosen.sum()),
            num_zero_groups=int(zero.sum()),
            group_sparsity=float(zero.sum()) / self.index.num_groups,
            norm_redundant=float(squares[chosen].sum().sqrt()),
            norm_important=float(squares[~chosen].sum().sqrt()),
        )
