"""Exactness check: the compact model must reproduce the zeroed full model, not only on the example.

A construction bug can hide on the example inputs: a max-pool that happens not to pick the
removed position, a slice that lands on zeros, a batch size baked into a reshape. So the compact
model is compared with the full one on the example inputs, on fresh random inputs of the same
shapes (drawn to look like the example: same mean and spread, integer ids in the example's range,
masks kept) and on a batch one larger, where the full model accepts it. A difference counts only
when it exceeds the output dtype's tolerance (as ``torch.testing.assert_close`` sets it: float32
keeps trainonce's 1e-5, half precision its own) times the output's scale; a NaN or an infinity
in either output is a failure, never a difference that ``max`` skips.

Running a model can change it (counters and running averages updated in ``forward``), so both
models run through ``torch.func.functional_call`` on copies of their buffers, in eval mode, and
come back exactly as they were.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from trainonce.graph.equality import Verdict, compare, tolerance
from trainonce.graph.execution import run, untouched
from trainonce.graph.inputs import ExampleInputs

_SEED = 20_251_207


def verification_inputs(inputs: ExampleInputs) -> list[tuple[str, ExampleInputs]]:
    """The example, fresh inputs shaped like it, and fresh inputs with one more row of batch."""
    generator = torch.Generator().manual_seed(_SEED)
    cases = [("the example inputs", inputs), ("fresh random inputs", _fresh(inputs, generator, batch=None))]
    batch = _batch_size(inputs)
    if batch is not None:
        cases.append((f"fresh inputs with batch size {batch + 1}", _fresh(inputs, generator, batch=batch)))
    return cases


def _tensor_leaves(inputs: ExampleInputs) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves((inputs.args, inputs.kwargs)) if isinstance(t, torch.Tensor)]


def _batch_size(inputs: ExampleInputs) -> int | None:
    leaves = _tensor_leaves(inputs)
    if not leaves or leaves[0].ndim == 0:
        return None
    return int(leaves[0].shape[0])


def _fresh(inputs: ExampleInputs, generator: torch.Generator, batch: int | None) -> ExampleInputs:
    """Random inputs like ``inputs``; with ``batch``, every leaf of that leading size gets one more row."""

    def draw(t: torch.Tensor) -> torch.Tensor:
        grow = batch is not None and t.ndim > 0 and t.shape[0] == batch
        shape = (t.shape[0] + 1, *t.shape[1:]) if grow else tuple(t.shape)
        if t.is_floating_point() and t.numel() > 1 and _looks_random(t):
            spread = t.double().std()
            sample = torch.randn(shape, generator=generator, dtype=torch.float64)
            return (sample * spread + t.double().mean()).to(device=t.device, dtype=t.dtype)
        if not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool and t.numel() > 0:
            low, high = int(t.min()), int(t.max())
            return torch.randint(low, high + 1, shape, generator=generator).to(device=t.device, dtype=t.dtype)
        if grow:  # masks, constants and flags: the same values, one more row
            return torch.cat([t, t[:1]])
        return t

    return inputs.map(draw)


def _looks_random(t: torch.Tensor) -> bool:
    """A float tensor of data (not a mask of two values, not holding infinities)."""
    if not bool(torch.isfinite(t).all()):
        return False
    flat = t.detach().flatten()
    return bool((flat != flat[0]).any()) and torch.unique(flat[:4096]).numel() > 2


def verify(full: nn.Module, compact: nn.Module, inputs: ExampleInputs) -> Verdict:
    """Compare the two models on every verification input; never raises for what the models do.

    The full model must run on the example inputs with finite outputs (anything else is reported
    as such). Fresh inputs on which the full model fails or is not finite are skipped: they say
    nothing about the compact model.
    """
    worst = 0.0
    with untouched(full) as full_buffers, untouched(compact) as compact_buffers:
        for where, case in verification_inputs(inputs):
            example = case is inputs
            try:
                expected = run(full, full_buffers, case)
            except Exception as error:
                if example:
                    return Verdict(False, math.inf, where, f"the full model fails: {_one_line(error)}")
                continue
            if not example and not all(bool(torch.isfinite(t).all()) for t in expected if t.is_floating_point()):
                continue
            try:
                actual = run(compact, compact_buffers, case)
            except Exception as error:
                return Verdict(False, math.inf, where, f"the compact model fails: {_one_line(error)}")
            verdict = compare(expected, actual)
            if not verdict.exact:
                return Verdict(False, verdict.difference, where, verdict.detail)
            worst = max(worst, verdict.difference)
    return Verdict(True, worst)


def _one_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"


def max_output_difference(full: nn.Module, compact: nn.Module, inputs: ExampleInputs) -> tuple[float, float]:
    """(max |full - compact| over all outputs, max |full output|) on the example inputs, eval mode.

    A NaN or an infinity in either output, or outputs of different structure, give ``inf``.
    """
    with untouched(full) as full_buffers, untouched(compact) as compact_buffers:
        expected = run(full, full_buffers, inputs)
        actual = run(compact, compact_buffers, inputs)
    if len(expected) != len(actual):
        return math.inf, 0.0
    diff, scale = 0.0, 0.0
    for e, a in zip(expected, actual, strict=True):
        if e.shape != a.shape:
            return math.inf, 0.0
        if not e.is_floating_point():
            if not torch.equal(e, a):
                return math.inf, 0.0
            continue
        if e.numel() == 0:
            continue
        if not (bool(torch.isfinite(e).all()) and bool(torch.isfinite(a).all())):
            return math.inf, 0.0
        diff = max(diff, float((e.double() - a.double()).abs().max()))
        scale = max(scale, float(e.abs().max()))
    return diff, scale


def within_tolerance(diff: float, scale: float, dtype: torch.dtype = torch.float32) -> bool:
    return diff <= tolerance(dtype) * max(1.0, scale)


def describe_inputs(inputs: Any) -> str:
    """Shapes of the example inputs, for messages."""
    leaves = _tensor_leaves(ExampleInputs.of(inputs))
    return ", ".join(f"{list(t.shape)} {str(t.dtype).removeprefix('torch.')}" for t in leaves)
