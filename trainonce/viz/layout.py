"""A layered drawing of a ``GraphView`` in plain SVG, for when graphviz is not installed.

The explorer page must work everywhere, so it cannot depend on graphviz. This is the classic
Sugiyama recipe cut to its core: layers by longest path from the inputs, a few barycentre
sweeps to untangle each layer, boxes pushed apart where they overlap. Linear in the size of the
view per sweep, so a few thousand boxes lay out in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from trainonce.viz.view import GraphView, ViewNode

CHAR_WIDTH = 5.6  # px per character at the 9.5px label font
LINE_HEIGHT = 13.0
PADDING = 8.0
GAP_X = 22.0
GAP_Y = 46.0
SWEEPS = 4


@dataclass
class _Box:
    node: ViewNode
    width: float
    height: float
    layer: int = 0
    x: float = 0.0  # centre
    y: float = 0.0  # top


def _measure(node: ViewNode) -> _Box:
    longest = max(len(text) for text in [node.title, *node.lines])
    height = LINE_HEIGHT * (1 + len(node.lines)) + PADDING
    return _Box(node, max(60.0, longest * CHAR_WIDTH + 2 * PADDING), height)


def _layers(boxes: dict[str, _Box], preds: dict[str, list[str]], succs: dict[str, list[str]]) -> list[list[_Box]]:
    """Longest-path layers; a box without predecessors sits right above its first consumer
    (an embedding fed by a buffer belongs next to where it is used, not at the top)."""
    for box in boxes.values():  # views list boxes in topological order
        box.layer = max((boxes[p].layer + 1 for p in preds[box.node.id]), default=0)
    for box in boxes.values():
        if not preds[box.node.id] and succs[box.node.id]:
            box.layer = max(0, min(boxes[s].layer for s in succs[box.node.id]) - 1)
    layers: list[list[_Box]] = [[] for _ in range(max((b.layer for b in boxes.values()), default=0) + 1)]
    for box in boxes.values():
        layers[box.layer].append(box)
    return layers


def _place(layer: list[_Box], wanted: dict[str, float]) -> None:
    """Order a layer by wanted centre, then push overlapping boxes apart around those centres."""
    layer.sort(key=lambda b: wanted[b.node.id])
    right = float("-inf")
    for box in layer:
        box.x = max(wanted[box.node.id], right + GAP_X + box.width / 2)
        right = box.x + box.width / 2
    shift = sum(wanted[b.node.id] - b.x for b in layer) / len(layer)
    for box in layer:
        box.x += shift


def layered_svg(view: GraphView) -> str:
    """SVG of ``view`` whose node groups carry the view ids and classes the explorer expects."""
    boxes = {node.id: _measure(node) for node in view.nodes}
    preds: dict[str, list[str]] = {i: [] for i in boxes}
    succs: dict[str, list[str]] = {i: [] for i in boxes}
    for a, b in view.edges:
        succs[a].append(b)
        preds[b].append(a)
    layers = _layers(boxes, preds, succs)
    for layer in layers:  # start: side by side in graph order
        _place(layer, {b.node.id: i * 200.0 for i, b in enumerate(layer)})
    for sweep in range(SWEEPS):  # barycentres from above, then from below
        order = layers if sweep % 2 == 0 else layers[::-1]
        neighbours = preds if sweep % 2 == 0 else succs
        for layer in order:
            wanted = {}
            for box in layer:
                near = neighbours[box.node.id]
                wanted[box.node.id] = sum(boxes[n].x for n in near) / len(near) if near else box.x
            _place(layer, wanted)
    y = 0.0
    for layer in layers:
        for box in layer:
            box.y = y
        y += max((b.height for b in layer), default=0.0) + GAP_Y
    left = min((b.x - b.width / 2 for b in boxes.values()), default=0.0) - 10
    for box in boxes.values():
        box.x -= left
    width = max((b.x + b.width / 2 for b in boxes.values()), default=0.0) + 10
    height = y
    parts = [f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
             'font-family="Helvetica, Arial, sans-serif" font-size="9.5">',
             '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
             '<g class="graph">']
    for a, b in view.edges:
        start, end = boxes[a], boxes[b]
        x1, y1, x2, y2 = start.x, start.y + start.height, end.x, end.y
        middle = (y1 + y2) / 2
        parts.append(f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} '
                     f'{x2:.1f},{y2:.1f}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
    parts.extend(_node_svg(box) for box in boxes.values())
    parts.append("</g></svg>")
    return "\n".join(parts)


def _node_svg(box: _Box) -> str:
    node = box.node
    x0, y0, w, h = box.x - box.width / 2, box.y, box.width, box.height
    classes = " ".join(["node", "node-" + node.kind, *(["frozen"] if node.frozen else [])])
    out = [f'<g id="{node.id}" class="{classes}"><title>{escape(node.tooltip or node.title)}</title>']
    if node.kind == "joint":
        out.append(f'<ellipse cx="{box.x:.1f}" cy="{y0 + h / 2:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" '
                   f'fill="{node.colours[0]}" stroke="#333"/>')
    else:
        stripe = w / len(node.colours)
        for i, colour in enumerate(node.colours):
            out.append(f'<rect x="{x0 + i * stripe:.1f}" y="{y0:.1f}" width="{stripe:.1f}" height="{h:.1f}" '
                       f'fill="{colour}" stroke="none"/>')
        dash = ' stroke-dasharray="4,3"' if node.frozen else ""
        out.append(f'<rect class="outline" x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
                   f'fill="none" stroke="#333"{dash}/>')
    out.append(f'<text text-anchor="middle" x="{box.x:.1f}" y="{y0 + PADDING / 2 + LINE_HEIGHT - 3:.1f}">'
               f'<tspan font-weight="bold">{escape(node.title)}</tspan>')
    out.extend(f'<tspan x="{box.x:.1f}" dy="{LINE_HEIGHT:.0f}">{escape(line)}</tspan>' for line in node.lines)
    out.append("</text></g>")
    return "".join(out)
