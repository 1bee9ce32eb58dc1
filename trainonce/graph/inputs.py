"""Example inputs: the three forms users pass (tensor, tuple, dict of kwargs) in one shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from trainonce.errors import CaptureError


@dataclass(frozen=True)
class ExampleInputs:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, example_inputs: Any) -> ExampleInputs:
        if isinstance(example_inputs, ExampleInputs):
            return example_inputs
        if isinstance(example_inputs, torch.Tensor):
            return cls((example_inputs,), {})
        if isinstance(example_inputs, (tuple, list)):
            return cls(tuple(example_inputs), {})
        if isinstance(example_inputs, dict):
            return cls((), dict(example_inputs))
        raise CaptureError(
            f"example_inputs must be a tensor, a tuple/list of positional inputs or a dict of "
            f"keyword inputs, got {type(example_inputs).__name__}"
        )

    def map(self, fn: Any) -> ExampleInputs:
        """Apply ``fn`` to every tensor (e.g. move to the meta device)."""
        args, kwargs = pytree.tree_map_only(torch.Tensor, fn, (self.args, self.kwargs))
        return ExampleInputs(tuple(args), dict(kwargs))

    def call(self, model: torch.nn.Module) -> Any:
        return model(*self.args, **self.kwargs)


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor of a model output (tuples, dicts, HF ``ModelOutput`` dataclasses)."""
    if hasattr(output, "to_tuple"):
        output = output.to_tuple()
    return [t for t in pytree.tree_leaves(output) if isinstance(t, torch.Tensor)]
