"""Pruned zoo models shared by the save/load and export tests (each built once per session)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

import trainonce
from trainonce.graph.inputs import ExampleInputs, output_tensors
from zoo import build


@functools.cache
def pruned(name: str) -> tuple[nn.Module, Any]:
    """The zoo model with a random half of its groups removed, in eval mode (built once)."""
    model, inputs = build(name)
    space = trainonce.analyze(model, inputs)
    space.zero_random(0.5, seed=0)
    return space.construct().eval(), inputs


def outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    """Every output tensor of ``model`` on ``inputs`` (tensor, tuple or dict), without autograd."""
    with torch.no_grad():
        return output_tensors(ExampleInputs.of(inputs).call(model))


def assert_same_outputs(expected: nn.Module, actual: nn.Module, inputs: Any) -> None:
    """Bitwise-equal outputs: a saved and reloaded model must compute exactly what it did."""
    for a, b in zip(outputs(expected, inputs), outputs(actual, inputs), strict=True):
        assert a.shape == b.shape
        assert torch.equal(a, b), f"max abs diff {(a - b).abs().max():.3g}"
