"""Constructibility probe: does the model still run when channels are removed?

Slicing tensors and fixing width attributes is not always enough: a ``forward`` may reshape
to a width computed from an attribute trainonce does not know (``x.reshape(B, N, C)`` with the
residual width ``C`` after the attention heads), or check two of its tensors against each other
(``nn.MultiheadAttention`` wants ``in_proj_weight`` to be three times its input width). Before
any training, prunable node groups are tried on a ``meta``-device skeleton (no memory, no
compute): one channel removed, forward run, output shapes compared. Groups whose removal breaks
the forward are frozen, with the error as the reason, so that training never targets structure
that construction cannot remove.

Groups are tried together where that cannot hide a failure, alone where it could. Removing two
groups at once can *mask* a failure of either (the shared projection in front of an attention
module breaks it alone, and looks fine when the heads shrink with it), and that takes a module
whose own ``forward`` sees both. So groups are coloured such that no two groups of one colour
touch tensors of the same module or of sibling modules (children of one parent that is not a
plain container); each colour is tried at once, and only the groups of a colour that fails are
tried one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainonce.construct.build import build_compact
from trainonce.construct.plan import Kept
from trainonce.graph.execution import tracing_mode
from trainonce.graph.inputs import output_tensors
from trainonce.metrics.params import count_parameters

REAL_PROBE_MAX_PARAMETERS = 300_000_000
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # their forward only chains children

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace
    from trainonce.groups.space import NodeGroup


def probe_constructibility(space: SearchSpace) -> str | None:
    """Freeze node groups whose removal breaks the forward; None or why the probe was skipped."""
    candidates = [g for g in space.node_groups if g.prunable]
    if not candidates:
        return None
    device: str | None = "meta"
    inputs = space.inputs.map(lambda t: t.to("meta"))
    expected = [tuple(v.shape) for v in space.graph.outputs]
    baseline = _run(space, {}, inputs, device)
    if baseline is not None:
        # Some models (e.g. HF attention masks) read tensor values; probe with real tensors
        # when the model is small enough to copy.
        on_meta = any(t.is_meta for t in space.model.parameters())
        size = count_parameters(space.model)
        if on_meta or size > REAL_PROBE_MAX_PARAMETERS:
            return f"constructibility probe skipped: the model does not run on the meta device ({baseline})"
        device, inputs = None, space.inputs
    for colour in colour_classes(space.model, candidates):
        if _run(space, _one_channel_each(colour), inputs, device, expected) is None:
            continue
        for group in colour:
            error = _run(space, _one_channel_each([group]), inputs, device, expected)
            if error is not None:
                group.prunable = False
                group.reason = f"removing channels breaks the forward pass: {error}"
    return None


def colour_classes(model: nn.Module, groups: list[NodeGroup]) -> list[list[NodeGroup]]:
    """Greedy colouring: groups that share a module (or a non-container parent) get different colours."""
    modules = dict(model.named_modules(remove_duplicate=False))
    scopes = [_scopes(group, modules) for group in groups]
    colours: list[list[int]] = []  # group positions per colour
    taken: list[set[str]] = []  # scopes used by each colour
    for i, scope in enumerate(scopes):
        for members, used in zip(colours, taken, strict=True):
            if not scope & used:
                members.append(i)
                used |= scope
                break
        else:
            colours.append([i])
            taken.append(set(scope))
    return [[groups[i] for i in members] for members in colours]


def _scopes(group: NodeGroup, modules: dict[str, nn.Module]) -> set[str]:
    """The modules whose forward sees the group: owners of its tensors and their non-container parents."""
    scopes: set[str] = set()
    for piece in [*group.producers, *group.consumers]:
        for name in piece.value.fqns:
            owner = name.rpartition(".")[0]
            scopes.add(owner)
            parent = owner.rpartition(".")[0] if owner else None
            if parent is not None and not isinstance(modules.get(parent), CONTAINERS):
                scopes.add(parent)
    return scopes


def _one_channel_each(groups: list[NodeGroup]) -> Kept:
    kept: Kept = {}
    for group in groups:
        mask = torch.ones(group.size, dtype=torch.bool)
        mask[-1] = False
        kept[group.atom.id] = mask
    return kept


def _run(space: SearchSpace, kept: Kept, inputs: object, device: str | None,
         expected: list[tuple[int, ...]] | None = None) -> str | None:
    try:
        skeleton = build_compact(space, kept, device=device)
        with torch.no_grad(), tracing_mode(skeleton):
            outputs = output_tensors(inputs.call(skeleton))  # type: ignore[attr-defined]
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"{type(error).__name__}: {first[:200]}"
    if expected is not None:
        shapes = [tuple(t.shape) for t in outputs]
        if shapes[: len(expected)] != expected:
            return f"output shapes changed from {expected} to {shapes}"
    return None
