"""The erasing dependency graph: the traced graph cut into segments (ALGORITHMS.md §1.2).

A *segment* is a maximal chain of ops: it grows from its first op along single edges and stops
after an op whose output is used more than once (a fan-out) or is a model output. *Joints*
(``add``/``sub``/``cat`` of several activations) are segments of their own, and so are the
model inputs. Edges follow the data flow. A chain segment is *erasable* (a GeZIG) when it has
trainable parameters used nowhere else, every consumer of its output is a joint that works
without it (an add keeps its other operand, a concat drops a slice nobody else owns), and its
output is provably zero once its parameters are zero (``zero_invariance``).

Removing a set of erasable segments keeps the network valid when (R1) every joint keeps at
least one operand and (R2) every model input still reaches every model output it reached
before. Both rules hold for every subset of a valid set, which is what makes hierarchical
selection safe: whichever accepted candidates training actually drives to zero, the rest of the
network still computes from its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from trainonce.graph.ir import Graph, Node, Value, ValueKind
from trainonce.groups.atoms import Atom
from trainonce.groups.propagate import Propagation
from trainonce.groups.zero_invariance import output_is_zero
from trainonce.metrics.macs import node_macs

JOINT_PACKETS = frozenset({"add", "sub", "cat"})


class SegmentKind(Enum):
    INPUT = "input"
    JOINT = "joint"
    CHAIN = "chain"


@dataclass(eq=False)
class Segment:
    id: int
    kind: SegmentKind
    nodes: list[Node] = field(default_factory=list)
    input_value: Value | None = None  # INPUT segments
    preds: set[int] = field(default_factory=set)
    succs: set[int] = field(default_factory=set)
    parameters: list[Value] = field(default_factory=list)
    erasable: bool = False
    reason: str | None = None
    cat_atoms: list[Atom] = field(default_factory=list)  # concat slices removed with it

    @property
    def name(self) -> str:
        """The modules the segment runs, e.g. ``layer1.0.conv1 .. layer1.0.bn2``."""
        if self.kind is SegmentKind.INPUT:
            assert self.input_value is not None
            return f"input {self.input_value.name}"
        modules: list[str] = []
        for node in self.nodes:
            if node.module and node.module not in modules:
                modules.append(node.module)
        if not modules:
            return ", ".join(n.packet for n in self.nodes[:3])
        return modules[0] if len(modules) == 1 else f"{modules[0]} .. {modules[-1]}"

    @property
    def ops(self) -> str:
        return " > ".join(n.packet for n in self.nodes)


@dataclass(frozen=True)
class Operand:
    """One operand slot of a joint: ``self``/``other`` of an add, or a position in a concat."""

    slot: str | int
    value: Value
    source: int  # segment id


def _activation_inputs(node: Node) -> list[Value]:
    return [v for v in node.inputs if v.kind in (ValueKind.ACTIVATION, ValueKind.INPUT)]


def base_packet(node: Node) -> str:
    """The op without an in-place suffix: ``add_`` -> ``add``."""
    packet = node.packet
    return packet[:-1] if packet.endswith("_") and not packet.startswith("_") else packet


def is_joint(node: Node) -> bool:
    return base_packet(node) in JOINT_PACKETS and len(_activation_inputs(node)) >= 2


def joint_operands(node: Node) -> list[tuple[str | int, Value]]:
    if base_packet(node) == "cat":
        return [(i, v) for i, v in enumerate(node.args["tensors"]) if isinstance(v, Value)]
    return [(slot, node.args[slot]) for slot in ("self", "other") if isinstance(node.args.get(slot), Value)]


class ErasingGraph:
    """Segments of a traced graph, their edges, erasability and the validity rules."""

    def __init__(self, graph: Graph, propagation: Propagation, exclude: Sequence[str] = ()) -> None:
        self.graph = graph
        self.propagation = propagation
        self.exclude = tuple(exclude)
        self.segments: list[Segment] = []
        self.segment_of_node: dict[int, int] = {}
        self.segment_of_value: dict[int, int] = {}
        self._cut()
        self._connect()
        self.operands = {s.id: self._operands(s) for s in self.segments if s.kind is SegmentKind.JOINT}
        self.output_ids = sorted({self.segment_of_value[v.id] for v in graph.outputs if v.id in self.segment_of_value})
        self.input_ids = [s.id for s in self.segments if s.kind is SegmentKind.INPUT]
        self.pairs = {i: self._reached(i, set()) & set(self.output_ids) for i in self.input_ids}
        for segment in self.segments:
            if segment.kind is SegmentKind.CHAIN:
                segment.reason = self._why_not_erasable(segment)
                segment.erasable = segment.reason is None
        self.candidates = [s.id for s in self.segments if s.erasable]

    # -- construction of the graph ----------------------------------------------------------
    def _new(self, kind: SegmentKind, **extra: object) -> Segment:
        segment = Segment(len(self.segments), kind, **extra)  # type: ignore[arg-type]
        self.segments.append(segment)
        return segment

    def _cut(self) -> None:
        for value in self.graph.inputs:
            self.segment_of_value[value.id] = self._new(SegmentKind.INPUT, input_value=value).id
        outputs = {v.id for v in self.graph.outputs}
        for node in self.graph.nodes:
            inputs = _activation_inputs(node)
            segment: Segment | None = None
            if not is_joint(node) and len(inputs) == 1 and inputs[0].producer is not None:
                before = inputs[0].producer
                previous = self.segments[self.segment_of_node[before.index]]
                users = {u.index for v in before.outputs for u in v.users}
                ends = any(v.id in outputs for v in before.outputs) or len(users) != 1
                if previous.kind is SegmentKind.CHAIN and previous.nodes[-1] is before and not ends:
                    segment = previous
            if segment is None:
                segment = self._new(SegmentKind.JOINT if is_joint(node) else SegmentKind.CHAIN)
            segment.nodes.append(node)
            self.segment_of_node[node.index] = segment.id
            for value in node.outputs:
                self.segment_of_value[value.id] = segment.id

    def _connect(self) -> None:
        for segment in self.segments:
            used: list[Value] = []
            for node in segment.nodes:
                for value in node.inputs:
                    if value.kind in (ValueKind.ACTIVATION, ValueKind.INPUT):
                        source = self.segment_of_value[value.id]
                        if source != segment.id:
                            segment.preds.add(source)
                            self.segments[source].succs.add(segment.id)
                    elif value.kind is ValueKind.PARAMETER and value not in used:
                        used.append(value)
            segment.parameters = used

    def _operands(self, joint: Segment) -> list[Operand]:
        node = joint.nodes[0]
        return [Operand(slot, value, self.segment_of_value[value.id]) for slot, value in joint_operands(node)]

    # -- erasability ------------------------------------------------------------------------
    def _why_not_erasable(self, segment: Segment) -> str | None:
        if not segment.parameters:
            return "no parameters"
        for param in segment.parameters:
            tensor = param.tensor
            if tensor is not None and not tensor.requires_grad:
                return f"parameter '{param.label}' does not require grad"
            if param.ndim == 0:
                return f"parameter '{param.label}' is a scalar"
            excluded = [m for m in self.exclude if any(n == m or n.startswith(m + ".") for n in param.fqns)]
            if excluded:
                return f"module '{excluded[0]}' excluded by the user"
            outside = [u for u in param.users if self.segment_of_node[u.index] != segment.id]
            if outside:
                return f"parameter '{param.label}' is also used by {outside[0].where}"
        last = segment.nodes[-1]
        outputs = {v.id for v in self.graph.outputs}
        if any(v.id in outputs for v in last.outputs):
            return "its output is a model output"
        if not any(v.users for v in last.outputs):
            return "its output is not used"
        zero, why = output_is_zero(segment.nodes, {p.id for p in segment.parameters})
        for value in last.outputs:
            for user in {u.index: u for u in value.users}.values():
                consumer = self.segments[self.segment_of_node[user.index]]
                if consumer.kind is not SegmentKind.JOINT:
                    return f"its output feeds {user.where}, not an add/concat joint"
                if value.id not in zero:
                    return f"not zero-invariant: {why}"
                problem = self._joint_problem(segment, consumer, value)
                if problem is not None:
                    return problem
        return None

    def _joint_problem(self, segment: Segment, joint: Segment, value: Value) -> str | None:
        node = joint.nodes[0]
        packet = base_packet(node)
        out = node.outputs[0]
        for operand in self.operands[joint.id]:
            if operand.value is not value:
                continue
            if packet == "sub" and operand.slot == "self":
                return f"it is the left operand of {node.where} (removing it would negate the other)"
            if packet == "add" and operand.slot == "other" and node.args.get("alpha", 1) != 1:
                return f"{node.where} scales it by alpha"
        if packet in ("add", "sub"):
            others = [o for o in self.operands[joint.id] if o.value is not value]
            if any(o.value.shape != out.shape or o.value.dtype != out.dtype for o in others):
                return f"the other operand of {node.where} is broadcast to the output shape"
            return None
        return self._cat_problem(segment, node, value)

    def _cat_problem(self, segment: Segment, cat: Node, value: Value) -> str | None:
        """Dropping a concat slice is exact only if nothing but the concat's consumers reads it."""
        p = self.propagation
        dim = int(cat.args.get("dim", 0)) % value.ndim
        atoms = [p.atoms.find(a) for a in p.atoms.leaves(p.dim(value, dim))]
        frozen = [a for a in atoms if a.frozen is not None]
        if frozen:
            return f"its concat slice cannot be dropped: {frozen[0].frozen}"
        others = [v for slot, v in joint_operands(cat) if v is not value]
        mine = {a.id for a in atoms}
        for other in others:
            if mine & {p.atoms.find(a).id for a in p.atoms.leaves(p.dim(other, dim))}:
                return f"its channels reach {cat.where} through another operand too"
        downstream = self._downstream(cat)
        inside = {n.index for n in segment.nodes}
        for other_value in self.graph.values:
            if other_value.id not in p.layouts:
                continue
            if not any(p.atoms.find(a).id in mine for layout in p.dims(other_value) for a in p.atoms.leaves(layout)):
                continue
            readers = {u.index for u in other_value.users}
            producer = other_value.producer
            if producer is not None and (producer.index in inside or producer.index in downstream):
                continue
            if producer is None and readers and readers <= (inside | downstream):
                continue
            return f"its channels are also read by '{other_value.label}' outside the concat's consumers"
        segment.cat_atoms.extend(a for a in atoms if a.id not in {c.id for c in segment.cat_atoms})
        return None

    def _downstream(self, start: Node) -> set[int]:
        seen = {start.index}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for value in node.outputs:
                for user in value.users:
                    if user.index not in seen:
                        seen.add(user.index)
                        frontier.append(user)
        return seen

    # -- validity ---------------------------------------------------------------------------
    def _reached(self, start: int, removed: set[int]) -> set[int]:
        seen = {start}
        frontier = [start]
        while frontier:
            for nxt in self.segments[frontier.pop()].succs:
                if nxt not in seen and nxt not in removed:
                    seen.add(nxt)
                    frontier.append(nxt)
        return seen

    def valid(self, removed: set[int]) -> bool:
        """R1 (every joint keeps an operand) and R2 (input-output connectivity) without ``removed``."""
        for joint_id, operands in self.operands.items():
            if joint_id not in removed and all(o.source in removed for o in operands):
                return False
        return all(outputs <= self._reached(i, removed) for i, outputs in self.pairs.items())

    def select(self, order: Iterable[int], removed: Iterable[int] = (), limit: int | None = None,
               need: float | None = None, cost: str = "macs") -> list[int]:
        """Hierarchical selection: walk candidate indices in ``order``, accept while valid.

        ``removed``: candidate indices already gone. Stops after ``limit`` acceptances, or once
        the accepted set (with ``removed``) saves at least ``need`` of ``cost``.
        """
        gone = {self.candidates[g] for g in removed}
        accepted: list[int] = []
        for g in order:
            if (limit is not None and len(accepted) >= limit) or (need is not None and self._saved(gone, cost) >= need):
                break
            segment_id = self.candidates[g]
            if segment_id in gone:
                continue
            if self.valid(gone | {segment_id}):
                gone.add(segment_id)
                accepted.append(g)
        return accepted

    # -- what removal leaves ----------------------------------------------------------------
    def dead(self, removed: set[int]) -> set[int]:
        """Segments with no path to a model output once ``removed`` (segment ids) are gone."""
        alive: set[int] = set()
        frontier = [o for o in self.output_ids if o not in removed]
        alive.update(frontier)
        while frontier:
            for prev in self.segments[frontier.pop()].preds:
                if prev not in alive and prev not in removed:
                    alive.add(prev)
                    frontier.append(prev)
        return {s.id for s in self.segments if s.id not in alive and s.id not in removed and s.kind is not SegmentKind.INPUT}

    def gone(self, candidates: Sequence[int]) -> set[int]:
        """Segment ids that disappear when the candidate indices are erased: them and the dead."""
        removed = {self.candidates[g] for g in candidates}
        return removed | self.dead(removed)

    def saved(self, candidates: Sequence[int], cost: str = "macs") -> float:
        """MACs (or parameters) of everything erasing ``candidates`` deletes."""
        return self._saved({self.candidates[g] for g in candidates}, cost)

    def _saved(self, removed: set[int], cost: str) -> float:
        return sum(self.segment_cost(self.segments[s], cost) for s in removed | self.dead(removed))

    def segment_cost(self, segment: Segment, cost: str) -> float:
        if cost == "params":
            return float(sum(p.tensor.numel() for p in segment.parameters if p.tensor is not None))
        return float(sum(node_macs(n)[1] for n in segment.nodes))

    def total(self, cost: str = "macs") -> float:
        return sum(self.segment_cost(s, cost) for s in self.segments)
