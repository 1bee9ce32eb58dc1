"""The channel-space pass: walk the IR once and give every tensor dimension a layout.

For each node, the rule registered for its ATen op (``trainonce.groups.rules``) states how its
output dimensions relate to its input dimensions: same channels (unify), a concatenation, a
slice, a reshape into heads, a fresh space (a conv's output channels), or unknown (freeze). The
pass also tracks, per dimension, whether zeroing the parameters of a channel makes that
channel's values exactly zero (``zero``), because removing a channel is exact only where what
is removed is zero; and it records which parameter dimensions are *consumed* (contracted
against activations: a conv's input channels), which belong to the consumer side of a group.

Complexity is linear in the number of nodes times the (small) number of dims and layout terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainonce.graph.ir import Graph, Node, Value, ValueKind
from trainonce.groups.atoms import AtomTable, Layout, NotRepresentable, layout_size

Rule = Callable[["Propagation", Node], None]
RULES: dict[str, Rule] = {}


def rule(*packets: str) -> Callable[[Rule], Rule]:
    """Register a rule for ATen op packets (``relu`` also serves the in-place ``relu_``)."""

    def register(fn: Rule) -> Rule:
        for packet in packets:
            RULES[packet] = fn
        return fn

    return register


def find_rule(packet: str) -> Rule | None:
    if packet in RULES:
        return RULES[packet]
    if packet.endswith("_") and not packet.startswith("_"):
        return RULES.get(packet[:-1])
    return None


@dataclass
class ConvRecord:
    """What construction needs to rewrite a conv module's ``groups``."""

    weight: Value
    groups: int
    group_layout: Layout | None  # the atom layout of the groups, None when groups == 1
    transposed: bool


@dataclass
class GroupNormRecord:
    """What construction needs to rewrite a GroupNorm module's ``num_groups`` (affine or not)."""

    module: str  # path of the module that ran the op
    num_groups: int
    width: int  # channels per group (that digit is frozen)
    group_layout: Layout


@dataclass
class Propagation:
    graph: Graph
    atoms: AtomTable = field(default_factory=AtomTable)
    layouts: dict[int, list[Layout]] = field(default_factory=dict)
    zero: dict[int, list[bool]] = field(default_factory=dict)
    origin: dict[int, Value] = field(default_factory=dict)  # value id -> parameter it views
    consumed: list[tuple[Value, Layout]] = field(default_factory=list)
    produced: list[tuple[Value, Layout]] = field(default_factory=list)
    convs: list[ConvRecord] = field(default_factory=list)
    group_norms: list[GroupNormRecord] = field(default_factory=list)
    unknown_ops: dict[str, int] = field(default_factory=dict)

    # -- reading ----------------------------------------------------------------------------
    def dims(self, value: Value) -> list[Layout]:
        return self.layouts[value.id]

    def dim(self, value: Value, d: int) -> Layout:
        return self.layouts[value.id][d % value.ndim]

    def is_zero(self, value: Value, d: int) -> bool:
        return self.zero[value.id][d % value.ndim]

    def all_frozen(self, layout: Layout) -> bool:
        return all(leaf.frozen is not None for leaf in self.atoms.leaves(layout))

    def param_of(self, value: Any) -> Value | None:
        """The parameter a value is a pure view of (through t/view/permute/casts), if any."""
        if not isinstance(value, Value):
            return None
        if value.kind is ValueKind.PARAMETER:
            return value
        return self.origin.get(value.id)

    # -- writing ----------------------------------------------------------------------------
    def set(self, value: Value, layouts: Sequence[Layout], zero: Sequence[bool]) -> None:
        assert len(layouts) == value.ndim == len(zero), (value, layouts, zero)
        self.layouts[value.id] = list(layouts)
        self.zero[value.id] = list(zero)

    def fresh(self, size: int, reason: str) -> Layout:
        """A new frozen dimension (spatial size, sequence, something created in the code)."""
        return self.atoms.fresh_layout(size, reason, frozen=reason)

    def set_fresh(self, value: Value, reason: str) -> None:
        self.set(value, [self.fresh(s, reason) for s in value.shape], [False] * value.ndim)

    def freeze(self, layout: Layout, reason: str) -> None:
        for term in layout:
            for atom in term:
                self.atoms.freeze(atom, reason)

    def freeze_value(self, value: Value, reason: str) -> None:
        for layout in self.dims(value):
            self.freeze(layout, reason)

    def unify(self, a: Layout, b: Layout, node: Node) -> Layout:
        """Same channels in the same order; if the index maps cannot be matched, freeze."""
        try:
            self.atoms.unify_layouts(a, b)
        except NotRepresentable as why:
            reason = f"index map not representable at {node.where} ({why})"
            self.freeze(a, reason)
            self.freeze(b, reason)
        return a

    def unify_all(self, node: Node, carriers: Sequence[tuple[Value, int]]) -> Layout:
        """One space for the given (value, dim) pairs; returns the first one's layout."""
        layout = self.dim(*carriers[0])
        for value, d in carriers[1:]:
            self.unify(layout, self.dim(value, d), node)
        return layout

    def guarded(self, node: Node, fn: Callable[[], None]) -> None:
        """Run a rule step; an index map the algebra cannot express makes the node opaque."""
        try:
            fn()
        except NotRepresentable as why:
            self.opaque(node, f"index map not representable at {node.where} ({why})")

    def opaque(self, node: Node, reason: str) -> None:
        """Unknown behaviour: every space the node touches is frozen, outputs are new."""
        for value in node.inputs:
            if value.id in self.layouts:
                self.freeze_value(value, reason)
        for value in node.outputs:
            self.set_fresh(value, reason)

    def contract(self, node: Node, pairs: Sequence[tuple[Value, int]]) -> None:
        """Dims summed over together (a matmul's k, a conv's input channels)."""
        self.contract_layouts(node, [(v, self.dim(v, d), self.is_zero(v, d)) for v, d in pairs])

    def contract_layouts(self, node: Node, operands: Sequence[tuple[Value, Layout, bool]]) -> None:
        """Layouts summed over together, each with its operand and zero flag.

        Removing a channel from a sum is exact when every product term of that channel is
        zero, i.e. when some *activation* operand is zero there (parameter operands are on the
        consumer side and are not zeroed). Parameter operands are recorded as consumers.
        """
        layouts = [layout for _, layout, _ in operands]
        for layout in layouts[1:]:
            self.unify(layouts[0], layout, node)
        activations = [z for v, _, z in operands if self.param_of(v) is None]
        for v, layout, _ in operands:
            param = self.param_of(v)
            if param is not None:
                self.consumed.append((param, layout))
        if not activations:
            self.freeze(layouts[0], f"contracted between two parameters at {node.where}")
        elif not any(activations):
            self.freeze(
                layouts[0],
                f"zeroed channels are not exactly zero when {node.where} sums over them "
                "(a non-zero-preserving op such as sigmoid, exp or adding a constant lies between)",
            )

    def produce(self, value: Any, d: int) -> None:
        param = self.param_of(value)
        if param is not None:
            self.produced.append((param, self.dim(value, d)))

    def size(self, layout: Layout) -> int:
        return layout_size(layout)


def propagate(graph: Graph, frozen_modules: Sequence[str] = ()) -> Propagation:
    """Run the channel-space pass over ``graph``."""
    from trainonce.groups import rules as _rules  # noqa: F401 - registers the rule table

    p = Propagation(graph)
    for value in graph.values:
        if value.producer is not None:
            continue
        if value.kind is ValueKind.INPUT:
            p.set_fresh(value, f"fed by the model input '{value.name}'")
        elif value.kind is ValueKind.PARAMETER:
            reason = _frozen_parameter_reason(value, frozen_modules)
            layouts = [p.atoms.fresh_layout(s, f"{value.label} dim {d}", reason) for d, s in enumerate(value.shape)]
            p.set(value, layouts, [True] * value.ndim)
        elif value.kind is ValueKind.BUFFER:
            layouts = [p.atoms.fresh_layout(s, f"{value.label} dim {d}") for d, s in enumerate(value.shape)]
            p.set(value, layouts, [False] * value.ndim)
        else:
            p.set_fresh(value, f"tensor constant '{value.label}' of fixed size")
    for node in graph.nodes:
        fn = find_rule(node.packet)
        if fn is None:
            p.unknown_ops[node.op] = p.unknown_ops.get(node.op, 0) + 1
            p.opaque(node, f"unknown op {node.where} (trainonce does not know how it maps channels)")
        else:
            try:
                fn(p, node)
            except NotRepresentable as why:  # an index map no rule step guarded: the node is opaque
                p.opaque(node, f"index map not representable at {node.where} ({why})")
        for value in node.outputs:
            if value.id not in p.layouts:
                p.set_fresh(value, f"output of {node.where}")
    for value in graph.outputs:
        p.freeze_value(value, "reaches a model output")
    return p


def _frozen_parameter_reason(value: Value, frozen_modules: Sequence[str]) -> str | None:
    tensor = value.tensor
    if tensor is not None and not tensor.requires_grad:
        return f"parameter '{value.label}' does not require grad"
    for prefix in frozen_modules:
        if any(name == prefix or name.startswith(prefix + ".") for name in value.fqns):
            return f"module '{prefix}' excluded by the user"
    return None
