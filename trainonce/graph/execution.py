"""Running a model without changing it: eval mode, no KV cache, buffers that forward may update copied.

Checks that compare two models (verification, the erase-mode program check) must leave the
user's model bit for bit as it was, yet some ``forward``s write into buffers (step counters,
running averages kept in eval mode too). ``torch.func.functional_call`` runs the model with
copies in their place, and ``tracing_mode`` restores every training flag and the HF cache flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from trainonce.graph.inputs import ExampleInputs, output_tensors


@contextlib.contextmanager
def tracing_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and ``use_cache=False`` during tracing; the model is restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    config = getattr(model, "config", None)
    had_cache = config is not None and hasattr(config, "use_cache")
    old_cache = getattr(config, "use_cache", None)
    try:
        model.eval()
        if had_cache:
            config.use_cache = False  # type: ignore[union-attr]
        yield
    finally:
        for module, training in modes.items():
            module.training = training
        if had_cache:
            config.use_cache = old_cache  # type: ignore[union-attr]


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Eval mode, no KV cache, and copies of the buffers to run with; the model comes back as it was."""
    buffers = {name: b.clone() for name, b in model.named_buffers(remove_duplicate=False)}
    with tracing_mode(model), torch.no_grad():
        yield buffers


def run(model: nn.Module, buffers: dict[str, torch.Tensor], inputs: ExampleInputs) -> list[torch.Tensor]:
    """The model's output tensors with ``buffers`` in place of its own (so its own stay unchanged)."""
    output = torch.func.functional_call(model, buffers, inputs.args, inputs.kwargs, strict=False, tie_weights=True)
    return output_tensors(output)
