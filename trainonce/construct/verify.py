"""Exactness check: the compact model must reproduce the zeroed full model."""

from __future__ import annotations

import torch
from torch import nn

from trainonce.graph.capture import tracing_mode
from trainonce.graph.inputs import ExampleInputs, output_tensors

RELATIVE_TOLERANCE = 1e-5


def max_output_difference(full: nn.Module, compact: nn.Module, inputs: ExampleInputs) -> tuple[float, float]:
    """(max |full - compact| over all outputs, max |full output|), both models in eval mode."""
    with torch.no_grad(), tracing_mode(full), tracing_mode(compact):
        expected = output_tensors(inputs.call(full))
        actual = output_tensors(inputs.call(compact))
    if len(expected) != len(actual):
        return float("inf"), 0.0
    diff, scale = 0.0, 0.0
    for e, a in zip(expected, actual, strict=True):
        if e.shape != a.shape:
            return float("inf"), 0.0
        if e.is_floating_point():
            diff = max(diff, float((e.double() - a.double()).abs().max()) if e.numel() else 0.0)
            scale = max(scale, float(e.abs().max()) if e.numel() else 0.0)
        elif not torch.equal(e, a):
            return float("inf"), 0.0
    return diff, scale


def within_tolerance(diff: float, scale: float) -> bool:
    return diff <= RELATIVE_TOLERANCE * max(1.0, scale)
