"""Picture of the erasing dependency graph: segments, joints, what is erasable and why not."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from trainonce.groups.segments import Segment, SegmentKind
from trainonce.viz.dot import quote, write_graph
from trainonce.viz.html import write_html
from trainonce.viz.view import GraphView, ViewGroup, ViewNode

if TYPE_CHECKING:
    from trainonce.groups.erasing import ErasingSpace

COLOURS = {"erasable": "#8fd19e", "erased": "#f4a6a6", "kept": "#dddddd", "joint": "#ffe08a", "input": "#9ecbff"}


def segments_dot(space: ErasingSpace, erased: Iterable[int] = ()) -> str:
    """DOT text; ``erased`` (candidate indices) are drawn as removed, with what dies with them."""
    erasing = space.erasing
    gone = erasing.gone(list(erased))
    total = max(1.0, erasing.total("macs"))
    lines = ["digraph segments {", '  rankdir=TB; node [fontname="Helvetica", fontsize=10, style=filled];']
    for segment in erasing.segments:
        if segment.kind is SegmentKind.INPUT:
            shape, colour, label = "box", COLOURS["input"], segment.name
        elif segment.kind is SegmentKind.JOINT:
            shape, colour, label = "circle", COLOURS["joint"], segment.nodes[0].packet
        else:
            share = 100.0 * erasing.segment_cost(segment, "macs") / total
            shape = "box"
            colour = COLOURS["erasable"] if segment.erasable else COLOURS["kept"]
            label = f"{segment.name}\n{segment.ops[:48]}\n{share:.1f}% MACs"
            if not segment.erasable and segment.parameters:
                label += f"\n({(segment.reason or '')[:60]})"
        if segment.id in gone:
            colour = COLOURS["erased"]
        tooltip = segment.reason or ("erasable" if segment.erasable else "")
        lines.append(f"  s{segment.id} [shape={shape}, fillcolor={quote(colour)}, label={quote(label)}, tooltip={quote(tooltip)}];")
    for segment in erasing.segments:
        for succ in sorted(segment.succs):
            style = ", style=dashed" if segment.id in gone or succ in gone else ""
            lines.append(f"  s{segment.id} -> s{succ} [{style.lstrip(', ')}];")
    lines.append("}")
    return "\n".join(lines)


def segments_view(space: ErasingSpace, erased: Iterable[int] = ()) -> GraphView:
    """The erasing graph for the explorer page: one group per segment with parameters; picking
    an erasable one also highlights every segment that would die with it."""
    erasing = space.erasing
    gone = erasing.gone(list(erased))
    total = max(1.0, erasing.total("macs"))
    dies_with: dict[int, set[int]] = {erasing.candidates[g]: erasing.gone([g]) for g in range(len(erasing.candidates))}

    def state(segment: Segment) -> str:
        if segment.kind is SegmentKind.INPUT:
            return "input"
        if segment.kind is SegmentKind.JOINT:
            return "joint"
        return "erased" if segment.id in gone else "erasable" if segment.erasable else "kept"

    nodes, groups = [], []
    for segment in erasing.segments:
        share = f"{100.0 * erasing.segment_cost(segment, 'macs') / total:.1f}% MACs"
        kind = {SegmentKind.INPUT: "input", SegmentKind.JOINT: "joint"}.get(segment.kind, "op")
        owns = segment.kind is SegmentKind.CHAIN and bool(segment.parameters)
        lines = [segment.ops[:48], share, state(segment)] if kind != "input" else []
        nodes.append(ViewNode(
            f"s{segment.id}", kind, segment.name, lines, [COLOURS[state(segment)]],
            frozen=owns and not segment.erasable, tooltip=segment.reason or state(segment),
            groups=[segment.id] if owns else [],
            affected=[s for s, dead in dies_with.items() if segment.id in dead and s != segment.id],
            search=" ".join([segment.ops, *(name for p in segment.parameters for name in p.fqns)])))
        if owns:
            doomed = sorted(dies_with.get(segment.id, set()) - {segment.id})
            facts = [("erasable", "yes" if segment.erasable else f"no: {segment.reason}"),
                     ("state", state(segment)),
                     ("parameters", f"{int(erasing.segment_cost(segment, 'params')):,}"), ("MAC share", share),
                     ("ops", segment.ops),
                     ("removed with it", ", ".join(erasing.segments[s].name for s in doomed) or "-")]
            tensors = [f"{p.label} {list(p.shape)}" for p in segment.parameters]
            groups.append(ViewGroup(segment.id, f"s{segment.id}", COLOURS[state(segment)], segment.erasable, f"segment s{segment.id}",
                                    facts, tensors))
    edges = [(f"s{s.id}", f"s{succ}") for s in erasing.segments for succ in sorted(s.succs)]
    legend = [(COLOURS[k], text) for k, text in (
        ("erasable", "erasable segment (GeZIG)"), ("erased", "erased, or dies with an erased segment"),
        ("kept", "segment that cannot be erased (reason in its card)"), ("joint", "joint: add / sub / cat"),
        ("input", "model input"))]
    headline = [f"{len(erasing.segments)} segments, {len(erasing.candidates)} erasable"]
    return GraphView(space.graph.model_name, headline, nodes, edges, groups, legend)


def render_segments(space: ErasingSpace, path: str | Path, erased: Iterable[int] = ()) -> str:
    """Render the erasing dependency graph to ``path`` (.svg/.pdf/.png via graphviz, .dot, or an .html explorer)."""
    if Path(path).suffix.lower() == ".html":
        return write_html(segments_view(space, erased), path)
    return write_graph(segments_dot(space, erased), path)
