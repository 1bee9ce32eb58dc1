"""The view of a pruning search space: the traced graph reduced to what a reader needs to see.

Only ops that own parameters or cost MACs (conv, linear, norms, embeddings, matmuls), joints
(ops that merge two data paths or split one into several) and the model's inputs and outputs
become boxes; every chain of pointwise and shape ops in between collapses into an edge, its op
names kept on the box that feeds it. That is what keeps a BERT or ResNet-152 picture readable:
its thousands of ATen nodes are mostly views, activations and dropouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainonce.graph.ir import Node, Value, ValueKind
from trainonce.groups.summary import producer_macs
from trainonce.metrics.macs import DEFAULT_EXCLUDED, node_macs
from trainonce.metrics.params import count_parameters
from trainonce.viz.render import render_view
from trainonce.viz.view import FROZEN, INPUT, JOINT, NEUTRAL, GraphView, ViewGroup, ViewNode, group_colour

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace
    from trainonce.groups.space import NodeGroup

MAX_LEGEND_GROUPS = 40  # prunable groups listed in the legend; every box still has its colour
MAX_ABSORBED = 3  # collapsed op names shown on a box


def render_search_space(space: SearchSpace, path: str | Path) -> str:
    return render_view(search_space_view(space), path)


def _flowing(node: Node) -> list[Value]:
    """Inputs that carry data from the model inputs (not parameters, buffers or constants)."""
    return [v for v in node.inputs if v.kind in (ValueKind.ACTIVATION, ValueKind.INPUT)]


def _shape(value: Value | None) -> str:
    return "x".join(str(s) for s in value.shape) if value is not None else ""


def _share(macs: int, total: int) -> str:
    percent = 100.0 * macs / max(1, total)
    return f"{percent:.1f}%" if percent >= 1 else f"{percent:.2f}%"


class _Builder:
    """Walks the IR once in topological order, tracking which box each value comes from."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.group_macs, self.total_macs = producer_macs(space)
        self.heads = space.head_atoms
        self.produces: dict[int, list[NodeGroup]] = {}  # parameter value id -> groups
        self.reads: dict[int, list[NodeGroup]] = {}
        for group in space.node_groups:
            for piece in group.producers:
                self.produces.setdefault(piece.value.id, []).append(group)
            for piece in group.consumers:
                self.reads.setdefault(piece.value.id, []).append(group)
        self.nodes: list[ViewNode] = []
        self.edges: dict[tuple[str, str], None] = {}  # ordered set
        self.source: dict[int, str] = {}  # value id -> id of the box it flows from
        self.absorbed: dict[str, list[str]] = {}  # box id -> collapsed ops after it

    def build(self) -> GraphView:
        graph = self.space.graph
        for k, value in enumerate(graph.inputs):
            if value.kind is ValueKind.INPUT:
                self.source[value.id] = f"in{k}"
                self.nodes.append(ViewNode(f"in{k}", "input", value.name, [_shape(value)], [INPUT], search="input"))
        for node in graph.nodes:
            self._visit(node)
        for k, value in enumerate(graph.outputs):
            box = ViewNode(f"out{k}", "output", f"output {k}", [_shape(value)], [INPUT], search="output")
            self.nodes.append(box)
            if value.id in self.source:
                self.edges[(self.source[value.id], box.id)] = None
        for box in self.nodes:
            ops = self.absorbed.get(box.id, [])
            if ops and box.kind in ("op", "joint"):  # an input's first line is its shape
                more = f" +{len(ops) - MAX_ABSORBED}" if len(ops) > MAX_ABSORBED else ""
                box.lines[0] += " > " + " > ".join(ops[:MAX_ABSORBED]) + more
                box.search += " " + " ".join(ops)
        return GraphView(graph.model_name, self._headline(), self.nodes, list(self.edges), self._groups(), self._legend())

    def _size(self, group: NodeGroup) -> str:
        return f"{group.size} {'heads' if group.atom.id in self.heads else 'channels'}"

    def _visit(self, node: Node) -> None:
        sources = [self.source.get(v.id) for v in _flowing(node)]
        distinct = list(dict.fromkeys(s for s in sources if s is not None))
        parameters = [v for v in node.inputs if v.kind is ValueKind.PARAMETER]
        family, macs = node_macs(node)
        used_outputs = sum(1 for v in node.outputs if v.users)
        if parameters or (macs and len(distinct) < 2):
            box = self._op_box(node, parameters, family, macs)
        elif len(distinct) >= 2 or (used_outputs >= 2 and distinct):
            box = self._joint_box(node, family, macs)
        else:  # collapsed into the edge from its (single) source box
            if distinct:
                ops = self.absorbed.setdefault(distinct[0], [])
                if node.packet not in ops and not node.packet.startswith("_assert"):
                    ops.append(node.packet)
                for value in node.outputs:
                    self.source[value.id] = distinct[0]
            return
        self.nodes.append(box)
        for source in distinct:
            self.edges[(source, box.id)] = None
        for value in node.outputs:
            self.source[value.id] = box.id

    def _mac_line(self, family: str | None, macs: int) -> list[str]:
        if family is None or family in DEFAULT_EXCLUDED or not macs:
            return []
        return [f"{_share(macs, self.total_macs)} MACs"]

    def _op_box(self, node: Node, parameters: list[Value], family: str | None, macs: int) -> ViewNode:
        produced = list({g.id: g for p in parameters for g in self.produces.get(p.id, [])}.values())
        read = list({g.id: g for p in parameters for g in self.reads.get(p.id, [])}.values())
        out = node.outputs[0] if node.outputs else None
        lines = [f"{node.packet} ({node.module_type})" if node.module_type else node.packet,
                 f"out {_shape(out)}", *self._mac_line(family, macs)]
        for group in produced:
            if group.prunable:
                lines.append(f"g{group.id}: {self._size(group)}")
            else:
                lines.append(f"g{group.id} frozen: {_clip(group.reason or '', 44)}")
        colours = list(dict.fromkeys(group_colour(g.id) if g.prunable else FROZEN for g in produced)) or [NEUTRAL]
        tooltip = [node.where, *(f"g{g.id}: {self._size(g)}, " + ("prunable" if g.prunable else f"frozen: {g.reason}")
                                 for g in produced)]
        if read:
            tooltip.append("reads the channels of " + ", ".join(f"g{g.id}" for g in read))
        return ViewNode(
            f"n{node.index}", "op", node.module or "(root)", lines, colours,
            frozen=bool(produced) and not any(g.prunable for g in produced), tooltip="\n".join(tooltip),
            groups=[g.id for g in produced], affected=[g.id for g in read if g not in produced],
            search=" ".join([node.packet, *(name for p in parameters for name in p.fqns)]))

    def _joint_box(self, node: Node, family: str | None, macs: int) -> ViewNode:
        out = node.outputs[0] if node.outputs else None
        lines = [node.packet, f"out {_shape(out)}", *self._mac_line(family, macs)]
        return ViewNode(f"n{node.index}", "joint", node.module or "(root)", lines, [JOINT], tooltip=node.where,
                        search=node.packet)

    def _headline(self) -> list[str]:
        space = self.space
        return [f"{len(space.graph.nodes)} ops, {count_parameters(space.model):,} parameters, "
                f"{self.total_macs / 1e6:,.2f} M MACs",
                f"{len(space.node_groups)} node groups, {len(space.prunable_groups)} prunable, "
                f"N = {space.num_prunable:,} prunable channels/heads"]

    def _groups(self) -> list[ViewGroup]:
        groups = []
        for group in self.space.node_groups:
            per_channel = group.params_per_channel()
            unit = "heads" if group.atom.id in self.heads else "channels"
            facts = [
                (unit, f"{group.size:,}"),
                ("prunable", "yes" if group.prunable else f"no: {group.reason}"),
                ("parameters", f"{per_channel * group.size:,} ({per_channel:,} per {unit[:-1]})"),
                ("MAC share", f"{_share(self.group_macs[group.id], self.total_macs)} (ops producing it)"),
                ("modules", group.name or "-"),
            ]
            tensors = [f"{p.value.label} [dim {p.dim}] produces" for p in group.producers]
            tensors += [f"{p.value.label} [dim {p.dim}] reads" for p in group.consumers]
            colour = group_colour(group.id) if group.prunable else FROZEN
            groups.append(ViewGroup(group.id, f"g{group.id}", colour, group.prunable, f"group g{group.id}", facts, tensors))
        return groups

    def _legend(self) -> list[tuple[str, str]]:
        prunable = self.space.prunable_groups
        rows = [(group_colour(g.id), f"g{g.id}: {self._size(g)}, {_clip(g.name, 60)}")
                for g in prunable[:MAX_LEGEND_GROUPS]]
        if len(prunable) > MAX_LEGEND_GROUPS:
            rows.append((NEUTRAL, f"... {len(prunable) - MAX_LEGEND_GROUPS} more prunable groups"))
        frozen: dict[str, list[int]] = {}  # one row per reason: many groups share one
        for group in self.space.node_groups:
            if not group.prunable:
                frozen.setdefault(group.reason or "", []).append(group.id)
        for reason, ids in frozen.items():
            listed = ", ".join(f"g{i}" for i in ids[:8]) + (f" (+{len(ids) - 8})" if len(ids) > 8 else "")
            rows.append((FROZEN, f"frozen {listed}: {reason}"))
        rows += [(JOINT, "joint: merges or splits data paths (add, mul, cat, split, matmul)"),
                 (INPUT, "model input / output"), (NEUTRAL, "op whose parameters belong to no group")]
        return rows


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def search_space_view(space: SearchSpace) -> GraphView:
    """The drawable summary of a pruning search space (see the module docstring)."""
    return _Builder(space).build()
