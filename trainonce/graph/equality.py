"""When are two models' outputs the same? Structure equal, integers equal, floats finite and close.

The tolerance follows the output dtype, as ``torch.testing.assert_close`` sets it (float32 keeps
trainonce's 1e-5), relative to the output's scale ``max(1, |output|)``. A NaN or an infinity is
never "close": ``max`` over differences would skip a NaN, so finiteness is checked first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

RELATIVE_TOLERANCE = 1e-5  # float32, relative to max(1, |output|)
TOLERANCES = {torch.float64: 1e-7, torch.float32: RELATIVE_TOLERANCE, torch.bfloat16: 1.6e-2, torch.float16: 1e-3}


def tolerance(dtype: torch.dtype) -> float:
    """Allowed difference relative to ``max(1, |output|)`` for outputs of ``dtype``."""
    return TOLERANCES.get(dtype, RELATIVE_TOLERANCE)


@dataclass(frozen=True)
class Verdict:
    """Whether the compact model matched, and if not where and by how much."""

    exact: bool
    difference: float  # max over outputs of |full - compact| / max(1, |full|)
    where: str = ""  # which inputs showed the problem
    detail: str = ""  # what went wrong there

    def describe(self) -> str:
        return f"on {self.where}: {self.detail}" if self.where else self.detail


def compare(expected: list[torch.Tensor], actual: list[torch.Tensor], names: tuple[str, str] = ("full", "compact")) -> Verdict:
    """Output by output: same structure, same integers, finite and close floats.

    ``names``: what to call the models that produced ``expected`` and ``actual`` in messages.
    """
    if len(expected) != len(actual):
        return Verdict(False, math.inf, detail=f"the {names[1]} model returns {len(actual)} tensors instead of {len(expected)}")
    worst = 0.0
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        if e.shape != a.shape:
            return Verdict(False, math.inf, detail=f"output {i} has shape {list(a.shape)} instead of {list(e.shape)}")
        if not e.is_floating_point():
            if not torch.equal(e, a):
                return Verdict(False, math.inf, detail=f"output {i} ({e.dtype}) differs")
            continue
        if e.numel() == 0:
            continue
        for name, tensor in zip(names, (e, a), strict=True):
            if not bool(torch.isfinite(tensor).all()):
                return Verdict(False, math.inf, detail=f"output {i} of the {name} model is not finite (NaN or inf)")
        difference = float((e.double() - a.double()).abs().max()) / max(1.0, float(e.abs().max()))
        worst = max(worst, difference)
        if difference > tolerance(e.dtype):
            return Verdict(False, difference, detail=f"output {i} differs by {difference:.3g} x max(1, |output|) "
                                                     f"(allowed {tolerance(e.dtype):g} for {e.dtype})")
    return Verdict(True, worst)


