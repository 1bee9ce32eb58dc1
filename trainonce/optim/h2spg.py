"""H2SPG: hierarchical half-space projected gradient, for erasing whole operators (OTOv3).

Schedule (ALGORITHMS.md §2.4): during a warm-up of ``start_step`` steps the base optimizer
trains alone while an exponential moving average of every erasable segment's redundancy score
(``halfspace.redundancy``: cosine of weights and update direction, inverse average magnitude)
is kept. At ``start_step`` the segments are sorted from most to least redundant and walked:
each is accepted only if, with it and everything accepted before removed, every joint keeps an
operand and every input still reaches every output (``ErasingGraph.select``), until the target
is met. Because that holds for every subset of the accepted set, whichever accepted segments
training actually drives to zero, the network stays valid. The accepted set then gets the
adaptive group-lasso penalty and half-space projection of DHSPG (``HalfSpaceOptimizer``); every
other variable takes plain base steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.optim.budget import check_reachable, one_target
from trainonce.optim.halfspace import HalfSpaceOptimizer, Penalty, redundancy
from trainonce.optim.saliency import GroupStatistics


class H2SPG(HalfSpaceOptimizer):
    """Erase whole segments of a model analysed with ``trainonce.analyze(..., mode="erase")``.

    Give exactly one target: ``target_sparsity`` (fraction of the erasable segments),
    ``target_flops`` or ``target_params`` (fraction of the model's MACs / parameters that the
    erased segments, and everything only they fed, account for). ``start_step``: warm-up steps
    for the redundancy average (``ema`` is its decay). ``epsilon`` and ``penalty`` as in DHSPG.
    """

    STATE_KEY = "h2spg"
    supports_erasing = True

    def __init__(self, base: Optimizer, space: SearchSpace, target_sparsity: float | None = None, *,
                 target_flops: float | None = None, target_params: float | None = None, start_step: int = 0,
                 pruning_steps: int, epsilon: float = 0.9, penalty: Penalty | None = None, ema: float = 0.9,
                 nonfinite: str = "raise") -> None:
        if space.erasing is None:
            raise TrainonceError("H2SPG erases whole segments: analyse the model with trainonce.analyze(model, inputs, "
                                 "mode='erase'); for channels use HESSO or DHSPG")
        super().__init__(base, space, start_step=start_step, pruning_steps=pruning_steps, epsilon=epsilon,
                         penalty=penalty, nonfinite=nonfinite)
        self.target_name, self.target = one_target(target_sparsity=target_sparsity, target_params=target_params,
                                                   target_flops=target_flops)
        if not 0.0 <= ema < 1.0:
            raise TrainonceError(f"ema must be in [0, 1), got {ema}")
        n = self.index.num_groups
        if self.target_name == "target_sparsity" and int(n * self.target) == 0:
            raise TrainonceError(f"target_sparsity={self.target} of N={n} erasable segments removes nothing; raise it")
        self.erasing = space.erasing
        if self.target_name != "target_sparsity":
            kind = self.target_name.removeprefix("target_")
            check_reachable(self.target_name, self.target, self.erasing.saved(list(range(n)), kind),
                            self.erasing.total(kind), "even if every erasable segment went")
        self.ema = ema
        self.notes: list[str] = []
        self.new_state(penalised=torch.zeros(n, dtype=torch.bool), zero=torch.zeros(n, dtype=torch.bool),
                       scores=torch.zeros(n, dtype=torch.float64), num_target=0, partitioned=False)

    @property
    def num_target(self) -> int:
        return int(self.own_state["num_target"])

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), self.target_name: self.target, "ema": self.ema}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        state = self.own_state
        if state["step"] >= self.start_step:
            return super().step(closure)
        before = self.capture()
        loss = self.base_step(closure)
        if self.step_taken:  # a skipped step has no update direction to score
            self._average(self.statistics(before))
        state["step"] += 1
        return loss

    def _average(self, stats: GroupStatistics) -> None:
        state = self.own_state
        score = redundancy(stats)
        first = state.get("ema_samples", 0) == 0
        state["scores"] = score if first else self.ema * state["scores"] + (1.0 - self.ema) * score
        state["ema_samples"] = state.get("ema_samples", 0) + 1

    def _partition(self, stats: GroupStatistics) -> None:
        """Most redundant first, each accepted only while the network stays connected."""
        self._average(stats)
        order = torch.sort(self.own_state["scores"], descending=True, stable=True).indices.tolist()
        if self.target_name == "target_sparsity":
            wanted = int(self.index.num_groups * self.target)
            accepted = self.erasing.select(order, limit=wanted)
            if len(accepted) < wanted:
                self.notes.append(f"only {len(accepted)} of the {wanted} segments asked for can be erased together "
                                  "without disconnecting the network")
        else:
            kind = self.target_name.removeprefix("target_")
            need = self.target * self.erasing.total(kind)
            accepted = self.erasing.select(order, need=need, cost=kind)
        chosen = torch.zeros(self.index.num_groups, dtype=torch.bool)
        chosen[accepted] = True
        chosen = self.agree(chosen)
        self.own_state["penalised"] = chosen
        self.own_state["num_target"] = int(chosen.sum())
