"""``WrappedOptimizer``: a ``torch.optim.Optimizer`` that drives a user's base optimizer.

Why share instead of copy: the wrapper's ``param_groups`` and ``state`` *are* the base's
objects. LR schedulers attached to either one change the same ``lr``; the base's momentum and
Adam moments and the wrapper's own state (under a string key in ``state``) are saved by one
``state_dict()`` and restored by one ``load_state_dict()``; ``zero_grad`` and hooks behave as
for any PyTorch optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError


class WrappedOptimizer(Optimizer):
    """Base class of the trainonce optimizers; subclasses keep their state in ``self.state[STATE_KEY]``."""

    STATE_KEY = "trainonce"

    def __init__(self, base: Optimizer) -> None:
        if not isinstance(base, Optimizer):
            raise TrainonceError(f"base must be a torch.optim.Optimizer (e.g. torch.optim.SGD(model.parameters(), lr=0.1)), got {type(base).__name__}")
        if isinstance(base, WrappedOptimizer):
            raise TrainonceError(f"base is already a trainonce optimizer ({type(base).__name__}); wrap the plain torch optimizer")
        super().__init__(base.param_groups, base.defaults)
        self.base = base
        self.param_groups = base.param_groups
        self.state = base.state

    @property
    def own_state(self) -> dict[str, Any]:
        """This optimizer's entry of ``state`` (a string key, so ``state_dict`` keeps it verbatim)."""
        return self.state[self.STATE_KEY]  # type: ignore[index]

    def lr_of(self) -> dict[int, float]:
        """Learning rate of every parameter, by ``id`` (schedulers may have changed it)."""
        return {id(p): float(group["lr"]) for group in self.param_groups for p in group["params"]}

    def base_step(self, closure: Callable[[], float] | None) -> Any:
        """Run the base optimizer's step (with grad enabled for the closure, as torch does)."""
        with torch.enable_grad():
            return self.base.step(closure) if closure is not None else self.base.step()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.STATE_KEY not in state_dict.get("state", {}):
            raise TrainonceError(f"this state_dict has no {type(self).__name__} state: was it saved from a {type(self).__name__}?")
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.after_load()

    def after_load(self) -> None:
        """Hook for subclasses: validate the loaded state and drop caches derived from it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base!r})"
