"""``WrappedOptimizer``: a ``torch.optim.Optimizer`` that drives a user's base optimizer.

Why share instead of copy: the wrapper's ``param_groups`` and ``state`` *are* the base's
objects. LR schedulers attached to either one change the same ``lr``; the base's momentum and
Adam moments and the wrapper's own state (under a string key in ``state``) are saved by one
``state_dict()`` and restored by one ``load_state_dict()``; ``zero_grad`` and hooks behave as
for any PyTorch optimizer.

Why the base step is guarded: one NaN loss or gradient, stepped, turns every weight and every
momentum into NaN, and a pruning optimizer then multiplies NaN by zero and "holds" groups that
are no longer zero. So before the base step runs, the gradients are checked (one reduction per
step over all of them, one host synchronisation) and a non-finite one is either an error that
names the step and the parameter (``nonfinite="raise"``, the default) or a skipped step
(``"skip"``), as ``torch.amp.GradScaler`` skips them. Under a ``GradScaler`` the scaler's own
check is used: the wrapper declares ``_step_supports_amp_scaling``, so ``scaler.step(opt)``
always calls ``step`` and hands over ``found_inf`` and ``grad_scale``; the wrapper unscales the
gradients itself and skips the base step when the scaler found an infinity. Either way a skipped
step still *counts*: the pruning schedule stays aligned with the caller's loop and LR scheduler,
and each optimizer defines what it does on a step without a base step (``step_skipped``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import NonFiniteError, TrainonceError

NONFINITE = ("raise", "skip", "ignore")


class WrappedOptimizer(Optimizer):
    """Base class of the trainonce optimizers; subclasses keep their state in ``self.state[STATE_KEY]``."""

    STATE_KEY = "trainonce"
    _step_supports_amp_scaling = True  # GradScaler hands found_inf / grad_scale to step() instead of skipping it

    def __init__(self, base: Optimizer, *, nonfinite: str = "raise") -> None:
        if not isinstance(base, Optimizer):
            raise TrainonceError(f"base must be a torch.optim.Optimizer (e.g. torch.optim.SGD(model.parameters(), lr=0.1)), got {type(base).__name__}")
        if isinstance(base, WrappedOptimizer):
            raise TrainonceError(f"base is already a trainonce optimizer ({type(base).__name__}); wrap the plain torch optimizer")
        if nonfinite not in NONFINITE:
            raise TrainonceError(f"nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
        super().__init__(base.param_groups, base.defaults)
        self.base = base
        self.param_groups = base.param_groups
        self.state = base.state
        self.nonfinite = nonfinite
        self.step_taken = True  # whether the last step ran the base optimizer
        self._closure_required = _requires_closure(base)

    @property
    def own_state(self) -> dict[str, Any]:
        """This optimizer's entry of ``state`` (a string key, so ``state_dict`` keeps it verbatim)."""
        return self.state[self.STATE_KEY]  # type: ignore[index]

    def lr_of(self) -> dict[int, float]:
        """Learning rate of every parameter, by ``id`` (schedulers may have changed it)."""
        return {id(p): float(group["lr"]) for group in self.param_groups for p in group["params"]}

    def base_step(self, closure: Callable[[], Any] | None) -> Any:
        """Run the base optimizer's step unless the step must be skipped; returns the loss (or None).

        ``self.step_taken`` says which: False when a ``GradScaler`` found an infinity, or when
        ``nonfinite="skip"`` and the loss or a gradient is not finite. With ``nonfinite="raise"``
        a non-finite loss or gradient raises ``NonFiniteError`` before the base optimizer moves.
        """
        loss = None
        if closure is not None and not self._closure_required:
            with torch.enable_grad():
                loss = closure()
        self.step_taken = self._gradients_usable(loss)
        if self.step_taken:
            with torch.enable_grad():
                if closure is not None and self._closure_required:
                    loss = self.base.step(closure)
                else:
                    self.base.step()
        return loss

    def _gradients_usable(self, loss: Any) -> bool:
        found_inf = getattr(self, "found_inf", None)  # set by GradScaler.step for this call
        if found_inf is not None:
            if bool(found_inf.item() != 0):
                return False
            grad_scale = getattr(self, "grad_scale", None)
            if grad_scale is not None:  # the scaler leaves unscaling to an optimizer that supports it
                self._unscale(grad_scale)
            return True
        if self.nonfinite == "ignore" or self._closure_required:  # a closure-driven base computes its own gradients
            return True
        problem = self._nonfinite(loss)
        if problem is None:
            return True
        if self.nonfinite == "skip":
            return False
        raise NonFiniteError(
            f"step {self.own_state.get('step', '?')}: {problem}. Nothing was stepped, zeroed or held. Lower the "
            "learning rate or clip the gradients; pass nonfinite='skip' to skip such steps (as GradScaler does), or "
            "train under torch.amp.GradScaler")

    def _nonfinite(self, loss: Any) -> str | None:
        """What is not finite (the loss, or the first parameter's gradient), or None."""
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and not bool(torch.isfinite(loss.detach())):
            return f"the loss is {float(loss)}"
        if isinstance(loss, float) and not math.isfinite(loss):
            return f"the loss is {loss}"
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None and not p.grad.is_sparse]
        if not params:
            return None
        by_device: dict[torch.device, list[int]] = {}
        for i, p in enumerate(params):
            by_device.setdefault(p.grad.device, []).append(i)  # type: ignore[union-attr]
        for members in by_device.values():
            grads = [params[i].grad for i in members]
            peaks = torch.stack([peak.float() for peak in torch._foreach_norm(grads, math.inf)])  # type: ignore[arg-type]
            bad = torch.nonzero(~torch.isfinite(peaks))
            if len(bad):
                first = params[members[int(bad[0])]]
                return f"the gradient of {self.parameter_name(first)} is not finite ({float(peaks[int(bad[0])])})"
        return None

    def _unscale(self, grad_scale: torch.Tensor) -> None:
        grads: dict[torch.device, list[torch.Tensor]] = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grads.setdefault(p.grad.device, []).append(p.grad)
        for device, tensors in grads.items():
            torch._foreach_div_(tensors, grad_scale.to(device=device, dtype=torch.float32))

    def parameter_name(self, param: torch.Tensor) -> str:
        """How to call a parameter in messages; subclasses that know the model give its name."""
        return f"a parameter of shape {list(param.shape)}"

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Everything ``load_state_dict`` would refuse, found before anything is changed."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            raise TrainonceError(f"not an optimizer state_dict: {type(state_dict).__name__}")
        if self.STATE_KEY not in state_dict["state"]:
            raise TrainonceError(f"this state_dict has no {name} state: was it saved from a {name}?")
        saved_groups = state_dict.get("param_groups")
        if not isinstance(saved_groups, list) or len(saved_groups) != len(self.param_groups):
            count = len(saved_groups) if isinstance(saved_groups, list) else None
            raise TrainonceError(f"the saved state has {count} parameter groups, this optimizer {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved.get("params", ())) != len(group["params"]):
                raise TrainonceError(f"parameter group {i} holds {len(saved.get('params', ()))} parameters in the saved "
                                     f"state and {len(group['params'])} here: build the base optimizer as the saved run did")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_state_dict(state_dict)
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.after_load()

    def after_load(self) -> None:
        """Hook for subclasses: validate the loaded state and drop caches derived from it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base!r})"


def _requires_closure(base: Optimizer) -> bool:
    """Bases whose step needs the closure itself (LBFGS re-evaluates it): they get it, unevaluated."""
    parameter = inspect.signature(type(base).step).parameters.get("closure")
    return parameter is not None and parameter.default is inspect.Parameter.empty
