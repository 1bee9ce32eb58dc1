"""The pruning search space: node groups of channels, derived from the propagated layouts.

A *node group* is one leaf atom: ``size`` channels (or heads) that prune index by index
together. Group ``i`` of a node group is every parameter position whose coordinate along that
atom is ``i`` on the *producer* side (stem rows, per-channel parameters); the consumer side
(the input slices of the next stems) follows at construction but is not part of the group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from trainonce.graph.ir import Value, ValueKind
from trainonce.groups.atoms import Atom, Layout, NotRepresentable, term_size
from trainonce.groups.propagate import Propagation


@dataclass(eq=False)
class ParamSlice:
    """The positions of one dimension of one tensor that belong to a node group."""

    value: Value
    dim: int
    index: torch.Tensor  # (size of dim,) channel of the node group at each position, -1 elsewhere

    @property
    def tensor(self) -> torch.Tensor:
        assert self.value.tensor is not None
        return self.value.tensor


@dataclass(eq=False)
class NodeGroup:
    id: int
    atom: Atom
    size: int
    prunable: bool
    reason: str | None
    producers: list[ParamSlice] = field(default_factory=list)
    consumers: list[ParamSlice] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Modules producing the group, e.g. ``layer1.0.conv2, layer1.0.bn2``."""
        modules: list[str] = []
        for s in self.producers:
            module = s.value.label.rpartition(".")[0] or s.value.label
            if module not in modules:
                modules.append(module)
        return ", ".join(modules)

    def params_per_channel(self) -> int:
        """Parameters removed with one channel (producer and consumer slices)."""
        total = 0
        for s in [*self.producers, *self.consumers]:
            if s.value.kind is ValueKind.PARAMETER:
                per_position = s.tensor.numel() // max(1, s.tensor.shape[s.dim])
                total += per_position * int((s.index >= 0).sum()) // self.size
        return total


def build_node_groups(p: Propagation, head_mode: str = "heads") -> tuple[list[NodeGroup], dict[int, list[Layout]]]:
    """Finalise the propagation into node groups and per-tensor layouts (for construction)."""
    graph = p.graph
    atoms = p.atoms
    tensors = graph.tensors
    layouts = normalized_tensor_layouts(p, tensors)
    in_activations = {atoms.find(a).id for v in graph.values if v.kind is ValueKind.ACTIVATION and v.id in p.layouts
                      for layout in p.dims(v) for a in atoms.leaves(layout)}
    consumed = _atom_sets(p, p.consumed)
    produced = _atom_sets(p, p.produced)
    for param_id, both in consumed.items():
        for atom_id in both & produced.get(param_id, set()):
            atoms.freeze(atoms.atoms[atom_id], "a parameter both produces and consumes these channels")
    _apply_product_policy(p, tensors, layouts, head_mode)

    def producer_atoms(value: Value, d: int) -> list[Atom]:
        skip = consumed.get(value.id, set()) if value.kind is ValueKind.PARAMETER else set()
        return [a for term in layouts[value.id][d] for a in term if a.id not in skip]

    changed = True
    while changed:  # a parameter may produce prunable channels along one dimension only
        changed = False
        for value in tensors:
            if value.kind is not ValueKind.PARAMETER:
                continue
            live_dims = [d for d in range(value.ndim) if any(_candidate(a) for a in producer_atoms(value, d))]
            if len(live_dims) > 1:
                for d in live_dims:
                    for a in producer_atoms(value, d):
                        atoms.freeze(a, f"parameter '{value.label}' produces channels along two dimensions")
                changed = True

    groups: dict[int, NodeGroup] = {}
    for value in tensors:
        for d in range(value.ndim):
            skip = consumed.get(value.id, set()) if value.kind is ValueKind.PARAMETER else set()
            for atom in {a.id: a for term in layouts[value.id][d] for a in term}.values():
                if atom.size <= 1 or atom.id not in in_activations:
                    continue
                group = groups.get(atom.id)
                if group is None:
                    group = groups[atom.id] = NodeGroup(len(groups), atom, atom.size, atom.frozen is None, atom.frozen)
                piece = ParamSlice(value, d, _coordinates(layouts[value.id][d], atom))
                is_producer = value.kind is ValueKind.PARAMETER and atom.id not in skip
                (group.producers if is_producer else group.consumers).append(piece)
    result = []
    for group in groups.values():
        if group.prunable and not group.producers:
            group.prunable, group.reason = False, "no trainable parameter produces these channels"
        if group.producers:  # consumer-only atoms (spatial positions, vocabularies) are not spaces
            result.append(group)
    for i, group in enumerate(result):
        group.id = i
    return result, layouts


def _candidate(atom: Atom) -> bool:
    return atom.frozen is None and atom.size > 1


def normalized_tensor_layouts(p: Propagation, tensors: Iterable[Value]) -> dict[int, list[Layout]]:
    """Normalise every parameter/buffer layout; what cannot be normalised is frozen."""
    return {value.id: [_normalize_or_freeze(p, value, layout) for layout in p.dims(value)] for value in tensors}


def _normalize_or_freeze(p: Propagation, value: Value, layout: Layout) -> Layout:
    opaque: list[Atom] = []
    try:
        normalized = p.atoms.normalize(layout, opaque)
        for atom in opaque:
            p.atoms.freeze(atom, f"inner digit of '{value.label}' is cut by a slice (e.g. rotary-embedding halves)")
        return normalized
    except NotRepresentable:
        leaves = p.atoms.leaves(layout)
        for leaf in leaves:
            p.atoms.freeze(leaf, f"index map of '{value.label}' not representable")
        return tuple((leaf,) for leaf in leaves)  # only used to list the frozen atoms


def _atom_sets(p: Propagation, records: list[tuple[Value, Layout]]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for value, layout in records:
        out.setdefault(value.id, set()).update(a.id for a in p.atoms.leaves(layout))
    return out


def _apply_product_policy(p: Propagation, tensors: list[Value], layouts: dict[int, list[Layout]], head_mode: str) -> None:
    """In a product (heads x head_dim) only one digit is pruned: heads by default."""
    changed = True
    while changed:
        changed = False
        for value in tensors:
            for layout in layouts[value.id]:
                for term in layout:
                    live = [a for a in term if _candidate(p.atoms.find(a))]
                    if len(live) < 2:
                        continue
                    keep = live[0] if head_mode == "heads" else live[-1]
                    for atom in live:
                        if atom is not keep:
                            p.atoms.freeze(atom, "inner digit of a product space (only one digit of heads x head_dim is pruned)" if head_mode == "heads" else "outer digit of a product space (head_dim mode)")
                            changed = True


def _coordinates(layout: Layout, atom: Atom) -> torch.Tensor:
    """For every position of a dimension, its coordinate along ``atom`` (or -1)."""
    pieces = []
    for term in layout:
        n = term_size(term)
        if atom in term:
            j = term.index(atom)
            inner = term_size(term[j + 1:])
            pieces.append((torch.arange(n) // inner) % atom.size)
        else:
            pieces.append(torch.full((n,), -1, dtype=torch.long))
    return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)

