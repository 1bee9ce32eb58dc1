"""Picture of the erasing dependency graph: segments, joints, what is erasable and why not."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from trainonce.groups.segments import SegmentKind
from trainonce.viz.dot import quote, write_graph

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


def render_segments(space: ErasingSpace, path: str | Path, erased: Iterable[int] = ()) -> str:
    """Render the erasing dependency graph to ``path`` (.svg/.pdf/.png via graphviz, or .dot)."""
    return write_graph(segments_dot(space, erased), path)
