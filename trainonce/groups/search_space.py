"""``SearchSpace``: what ``trainonce.analyze`` returns, and the operations on node groups."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.graph.capture import capture, capture_for_surgery
from trainonce.graph.inputs import ExampleInputs
from trainonce.graph.ir import Graph
from trainonce.groups.atoms import Layout
from trainonce.groups.counts import freeze_fixed_counts
from trainonce.groups.propagate import Propagation, propagate
from trainonce.groups.space import NodeGroup, build_node_groups, normalized_tensor_layouts

if TYPE_CHECKING:
    from trainonce.groups.segments import ErasingGraph

Redundant = dict[int, torch.Tensor]  # node group id -> indices of the channels removed


class SearchSpace:
    """Node groups of a model plus everything needed to zero, score and remove them."""

    mode = "prune"
    erasing: ErasingGraph | None = None  # erasing mode: which sets of groups may go together

    def __init__(self, model: nn.Module, inputs: ExampleInputs, graph: Graph, propagation: Propagation,
                 node_groups: list[NodeGroup], layouts: dict[int, list[Layout]]) -> None:
        self.model = model
        self.inputs = inputs
        self.graph = graph
        self.propagation = propagation
        self.node_groups = node_groups
        self.layouts = layouts
        self.notes: list[str] = []

    # -- counts -----------------------------------------------------------------------------
    @property
    def prunable_groups(self) -> list[NodeGroup]:
        return [g for g in self.node_groups if g.prunable]

    @property
    def num_prunable(self) -> int:
        """N: the number of prunable groups (channels or heads) over all node groups."""
        return sum(g.size for g in self.prunable_groups)

    def atom_sizes(self) -> dict[int, int]:
        return {g.atom.id: g.size for g in self.node_groups}

    @cached_property
    def head_atoms(self) -> dict[int, list[str]]:
        """Atoms that are the outer digit of a product (attention heads, GroupNorm groups).

        Cached: layouts are fixed after analysis, and construction (probe included) asks often.
        """
        heads: dict[int, list[str]] = {}
        for group in self.node_groups:
            names: list[str] = []
            is_head = False
            for piece in [*group.producers, *group.consumers]:
                names.extend(piece.value.fqns)
                layout = self.layouts[piece.value.id][piece.dim]
                is_head |= any(len(term) > 1 and term[0] is group.atom for term in layout)
            if is_head:
                heads[group.atom.id] = names
        return heads

    # -- weights ----------------------------------------------------------------------------
    @torch.no_grad()
    def group_norms(self) -> dict[int, torch.Tensor]:
        """L2 norm of every group (producer slices) of every prunable node group."""
        norms = {}
        for group in self.prunable_groups:
            squares = torch.zeros(group.size, dtype=torch.float64)
            for piece in group.producers:
                tensor = piece.tensor.detach()
                other = [d for d in range(tensor.ndim) if d != piece.dim]
                per_position = tensor.double().pow(2).sum(dim=other) if other else tensor.double().pow(2)
                valid = piece.index >= 0
                squares.index_add_(0, piece.index[valid], per_position.cpu()[valid])
            norms[group.id] = squares.sqrt()
        return norms

    @torch.no_grad()
    def zero_groups(self, redundant: Redundant) -> None:
        """Set the producer slices of the given groups to exactly zero, in the model."""
        by_id = {g.id: g for g in self.node_groups}
        for group_id, indices in redundant.items():
            group = by_id[group_id]
            chosen = torch.zeros(group.size, dtype=torch.bool)
            chosen[torch.as_tensor(indices, dtype=torch.long)] = True
            for piece in group.producers:
                valid = piece.index >= 0
                positions = torch.nonzero(valid & chosen[piece.index.clamp(min=0)]).squeeze(1)
                piece.tensor.index_fill_(piece.dim, positions.to(piece.tensor.device), 0.0)

    def zero_random(self, fraction: float, seed: int = 0, divisible: int = 1) -> Redundant:
        """Zero a random ``fraction`` of the prunable groups (never a whole node group).

        A validation aid: after it, ``construct()`` must reproduce the model exactly; and a
        stand-in for a trained pruning result when only the compact model's shape matters
        (latency). Every channel draws a random rank and the lowest ranks go, each node group
        keeping at least one channel, so every layer loses about ``fraction`` of its width, as
        after HESSO. With ``divisible > 1`` the removals are cut into the blocks HESSO's
        ``group_divisible`` uses (``trainonce.optim.selection``): a node group wider than
        ``divisible`` keeps a multiple of it, a narrower one is left whole, so the widths are
        exactly the ones ``HESSO(..., group_divisible=divisible)`` can produce, and the zeroed
        total may fall a little short of ``fraction`` (it never exceeds it).
        """
        from trainonce.optim.selection import removable_blocks, take_count  # trainonce.optim imports this module

        if not 0.0 <= fraction < 1.0:
            raise TrainonceError(f"fraction must be in [0, 1), got {fraction}")
        if divisible < 1:
            raise TrainonceError(f"divisible must be >= 1, got {divisible}")
        groups = self.prunable_groups
        if not groups:
            return {}
        owner = torch.cat([torch.full((g.size,), i) for i, g in enumerate(groups)])
        channel = torch.cat([torch.arange(g.size) for g in groups])
        rank = torch.empty(len(owner), dtype=torch.float64)
        rank[torch.randperm(len(owner), generator=torch.Generator().manual_seed(seed))] = torch.arange(len(owner), dtype=torch.float64)
        blocks = removable_blocks(rank, owner, torch.ones(len(owner), dtype=torch.bool), divisible)
        chosen = torch.nonzero(take_count(blocks, int(self.num_prunable * fraction), len(owner))).squeeze(1)
        redundant: dict[int, list[int]] = {}
        for position in chosen.tolist():
            redundant.setdefault(groups[int(owner[position])].id, []).append(int(channel[position]))
        result = {gid: torch.tensor(sorted(indices)) for gid, indices in redundant.items()}
        self.zero_groups(result)
        return result

    def redundant_from_zeros(self) -> Redundant:
        """Groups whose producer slices are exactly zero now."""
        from trainonce.construct.plan import zero_channels  # construct builds on groups, not the reverse

        return zero_channels(self.node_groups)

    # -- construction -----------------------------------------------------------------------
    def construct(self, redundant: Redundant | None = None, verify: bool = True) -> nn.Module:
        """A new compact module without the redundant groups; the model is left untouched.

        ``redundant`` (e.g. from an optimizer's state) must agree with the groups that are
        exactly zero in the model; by default those zero groups are used.
        """
        from trainonce.construct.construct import construct

        return construct(self, redundant, verify)

    # -- reporting --------------------------------------------------------------------------
    def summary(self, max_rows: int = 60) -> str:
        from trainonce.groups.summary import summarize

        return summarize(self, max_rows)

    def render(self, path: str | Path) -> str:
        """Draw the dependency graph with every node group in its own colour; returns the path.

        ``.svg``/``.pdf``/``.png`` are drawn by graphviz, ``.dot`` writes its input text, and
        ``.html`` writes a self-contained explorer (search a module, see its group highlighted
        with its facts) that opens in any browser and needs neither a server nor graphviz.
        """
        from trainonce.viz.graph import render_search_space

        return render_search_space(self, path)

    def __repr__(self) -> str:
        return (f"SearchSpace({self.graph.model_name}: {len(self.node_groups)} node groups, "
                f"{len(self.prunable_groups)} prunable, N={self.num_prunable})")


def analyze(model: nn.Module, example_inputs: Any, mode: str = "prune", exclude: tuple[str, ...] = (),
            head_mode: str = "heads", probe: bool = True) -> SearchSpace:
    """Trace ``model`` and build its search space.

    ``example_inputs``: a tensor, a tuple of positional inputs or a dict of keyword inputs.
    ``mode``: ``"prune"`` (channels and heads) or ``"erase"`` (whole operators: an
    ``ErasingSpace``). ``exclude``: module names whose channels (or segments) must be kept.
    ``head_mode``: prune whole attention heads (``"heads"``) or the same head-dim coordinates in
    every head (``"head_dim"``). ``probe``: try each removal on a ``meta`` skeleton first.
    """
    if mode not in ("prune", "erase"):
        raise TrainonceError(f"mode must be 'prune' or 'erase', got {mode!r}")
    if head_mode not in ("heads", "head_dim"):
        raise TrainonceError(f"head_mode must be 'heads' or 'head_dim', got {head_mode!r}")
    if not isinstance(model, nn.Module):
        raise TrainonceError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = ExampleInputs.of(example_inputs)
    if mode == "erase":
        graph, program, dynamic = capture_for_surgery(model, inputs)
        return _erasing_space(model, inputs, graph, propagate(graph, exclude), program, dynamic, exclude, probe)
    graph, _ = capture(model, inputs)
    propagation = propagate(graph, exclude)
    freeze_fixed_counts(model, propagation)
    groups, layouts = build_node_groups(propagation, head_mode)
    space = SearchSpace(model, inputs, graph, propagation, groups, layouts)
    if probe:
        from trainonce.construct.probe import probe_constructibility

        note = probe_constructibility(space)
        if note:
            space.notes.append(note)
    return space




def _erasing_space(model: nn.Module, inputs: ExampleInputs, graph: Graph, propagation: Propagation,
                   program: torch.export.ExportedProgram, dynamic: bool, exclude: tuple[str, ...], probe: bool) -> SearchSpace:
    from trainonce.groups.erasing import ErasingSpace
    from trainonce.groups.segments import ErasingGraph

    layouts = normalized_tensor_layouts(propagation, graph.tensors)
    space = ErasingSpace(model, inputs, graph, propagation, layouts, program, dynamic,
                         ErasingGraph(graph, propagation, exclude))
    if probe:
        space.probe()
    return space
