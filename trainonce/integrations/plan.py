"""What the trainer integrations share: wrap a base optimizer late, report sparsity, construct.

Hugging Face's ``Trainer`` and Lightning build the user's optimizer themselves and know how
many optimizer steps the run has only when training starts. ``PruningPlan`` keeps the user's
choice (a trainonce optimizer class and its keyword arguments) until then, and fills in the
schedule options the user left out with the fractions ``trainonce prune`` uses (warm-up,
pruning window, fine-tuning), so a longer run scales every phase alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import Redundant, SearchSpace
from trainonce.optim.schedule import PERIODS, make_schedule
from trainonce.optim.sparse import GroupSparseOptimizer

SCHEDULE_OPTIONS = ("start_step", "pruning_steps", "periods")


@dataclass(frozen=True)
class PruningPlan:
    """``optimizer_cls(base, space, **options)`` plus the schedule fitted to the run's length."""

    optimizer_cls: type[GroupSparseOptimizer]
    options: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not (isinstance(self.optimizer_cls, type) and issubclass(self.optimizer_cls, GroupSparseOptimizer)):
            raise TrainonceError(f"optimizer_cls must be a trainonce optimizer class (e.g. trainonce.HESSO), got {self.optimizer_cls!r}")

    def schedule(self, total_steps: float) -> dict[str, int]:
        """The schedule options ``optimizer_cls`` takes and the user did not give, for ``total_steps`` optimizer steps."""
        accepted = inspect.signature(self.optimizer_cls).parameters
        missing = [name for name in SCHEDULE_OPTIONS if name in accepted and name not in self.options]
        if not missing:
            return {}
        if not math.isfinite(total_steps) or total_steps < 1:
            raise TrainonceError(f"cannot fit {', '.join(missing)} to a run of {total_steps} optimizer steps: "
                                 "give the trainer max_steps (or a sized dataset), or pass these options yourself")
        fitted = make_schedule(int(total_steps), periods=self.options.get("periods", PERIODS))
        derived = {"start_step": fitted.start_step, "pruning_steps": fitted.pruning_steps, "periods": fitted.periods}
        return {name: derived[name] for name in missing}

    def wrap(self, base: Optimizer, space: SearchSpace, total_steps: float) -> GroupSparseOptimizer:
        options: dict[str, Any] = {**self.options, **self.schedule(total_steps)}
        return self.optimizer_cls(base, space, **options)


def sparsity_metrics(optimizers: Sequence[GroupSparseOptimizer]) -> dict[str, float]:
    """Share and number of the groups held at exactly zero, over every wrapped optimizer."""
    zero = sum(int(opt.zero_mask().sum()) for opt in optimizers)
    total = sum(opt.index.num_groups for opt in optimizers)
    return {"group_sparsity": zero / total, "zero_groups": float(zero)}


def construct_compact(optimizers: Sequence[GroupSparseOptimizer]) -> nn.Module:
    """The compact model without the groups the optimizers zeroed, verified against the trained model.

    The example inputs follow the model to its device: trainers move the model to the
    accelerator after ``analyze`` has seen it on the CPU.
    """
    space = optimizers[0].space
    redundant: Redundant = {}
    for opt in optimizers:  # each optimizer indexes only the node groups it trains: disjoint
        redundant.update(opt.redundant())
    device = next(space.model.parameters()).device
    space.inputs = space.inputs.map(lambda tensor: tensor.to(device))
    return space.construct(redundant)
