"""The property every random network must have: exact or refused, never corrupt, never a raw crash.

``check(spec, mode)`` analyses a random network, zeroes a random part of its search space,
constructs the compact model and then judges it on inputs construction never saw: fresh random
inputs of the example's shape and a batch of another size. The outcome is one of

- ``exact``: built, and equal to the zeroed model everywhere it was checked;
- ``nothing``: no prunable group (or erasable segment) to remove;
- ``refused``: trainonce said no with its own error (capture, analysis or construction);
- ``corrupt``: built, passed trainonce's own verification, yet differs somewhere (a failure);
- ``raw``: an exception that is not a ``TrainonceError`` escaped (a failure);
- ``touched``: analysis or construction changed the user's model (a failure).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import torch

import trainonce
from trainonce.errors import ConstructionError, TrainonceError
from zoo.random_nets import NetSpec, build, example_input

FAILURES = ("corrupt", "raw", "touched")
RELATIVE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Outcome:
    kind: str
    stage: str = ""
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict(keep_vars=True).items()}


def _same_state(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> str | None:
    now = model.state_dict(keep_vars=True)
    if set(now) != set(saved):
        return f"tensor names changed: {sorted(set(now) ^ set(saved))[:4]}"
    for name, tensor in now.items():
        if tensor.shape != saved[name].shape or not torch.equal(tensor.detach(), saved[name]):
            return f"tensor {name!r} changed"
    return None


def _difference(model: torch.nn.Module, compact: torch.nn.Module, x: torch.Tensor) -> float | None:
    """max |model(x) - compact(x)| relative to max(1, |model(x)|); None if the full model does not run on x."""
    with torch.no_grad():
        try:
            expected = model(x)
        except Exception:
            return None
        if not bool(torch.isfinite(expected).all()):
            return None
        actual = compact(x)
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return float("inf")
    difference = (actual.double() - expected.double()).abs().max()
    if not bool(torch.isfinite(difference)):
        return float("inf")
    return float(difference) / max(1.0, float(expected.abs().max()))


def check(spec: NetSpec, mode: str = "prune", fraction: float = 0.5, seed: int = 0) -> Outcome:
    """Analyse, zero ``fraction`` of the space at random, construct, and judge on unseen inputs."""
    model, example = build(spec)
    stage = "analyze"
    try:
        original = _state(model)
        space = trainonce.analyze(model, example, mode=mode)
        changed = _same_state(model, original)
        if changed is not None:
            return Outcome("touched", stage, changed)
        if space.num_prunable == 0:
            return Outcome("nothing", stage)
        stage = "zero"
        space.zero_random(fraction, seed=seed)
        zeroed = _state(model)
        stage = "construct"
        try:
            compact = space.construct()
        except ConstructionError as error:
            return Outcome("refused", stage, str(error).splitlines()[0][:300])
        changed = _same_state(model, zeroed)
        if changed is not None:
            return Outcome("touched", stage, changed)
        stage = "unseen inputs"
        inputs = [example_input(spec, seed=s) for s in (1, 2, 3)] + [example_input(spec, batch=3, seed=4),
                                                                  example_input(spec, batch=1, seed=5)]
        for i, x in enumerate(inputs):
            try:
                difference = _difference(model, compact, x)
            except Exception as error:  # the full model ran, the compact one did not
                return Outcome("corrupt", stage, f"input {i} (shape {list(x.shape)}): {type(error).__name__}: "
                                                 f"{str(error).splitlines()[0][:200]}")
            if difference is not None and difference > RELATIVE_TOLERANCE:
                return Outcome("corrupt", stage, f"input {i} (shape {list(x.shape)}) differs by {difference:.3g}")
    except TrainonceError as error:
        return Outcome("refused", stage, f"{type(error).__name__}: {str(error).splitlines()[0][:300]}")
    except Exception as error:
        return Outcome("raw", stage, f"{type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}")
    return Outcome("exact", stage)
