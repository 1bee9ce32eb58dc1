"""Build the compact model: slice tensors, copy the module tree around them, fix widths.

The user's model is never modified. Sliced tensors are created first and handed to
``copy.deepcopy`` through its memo, so the full model is never duplicated in memory (peak is
the model plus the compact model). The same path builds a ``meta``-device skeleton for the
constructibility probe, which allocates nothing.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainonce.construct.attributes import update_config, update_widths
from trainonce.construct.plan import Kept, slice_to_kept

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace


def build_compact(space: SearchSpace, kept: Kept, device: str | None = None) -> nn.Module:
    """A new module with every tensor sliced to the kept channels (on ``device`` if given)."""
    model = space.model
    memo: dict[int, Any] = {}
    changed: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    in_graph: set[int] = set()
    for value in space.graph.tensors:
        tensor = value.tensor
        assert tensor is not None
        in_graph.add(id(tensor))
        new = tensor.detach()
        if device is not None:
            new = new.to(device)
        new = slice_to_kept(new, space.layouts[value.id], kept)
        if tuple(new.shape) != tuple(tensor.shape):
            for name in value.fqns:
                changed[name] = (tuple(tensor.shape), tuple(new.shape))
        elif device is None:
            new = new.clone()
        memo[id(tensor)] = _like(tensor, new)
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in in_graph and id(tensor) not in memo:
            moved = tensor.detach().to(device) if device is not None else tensor.detach().clone()
            memo[id(tensor)] = _like(tensor, moved)
    compact = copy.deepcopy(model, memo)
    heads = space.head_atoms
    update_widths(compact, space.propagation, kept, space.layouts, changed, heads, space.atom_sizes())
    prunable_sizes = {g.atom.id: g.size for g in space.prunable_groups}
    update_config(compact, kept, prunable_sizes, set(heads) & set(prunable_sizes))
    compact.train(model.training)
    return compact


def _like(original: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    if isinstance(original, nn.Parameter):
        return nn.Parameter(data, requires_grad=original.requires_grad)
    return data
