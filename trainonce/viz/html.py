"""The explorer: one self-contained HTML file (no server, no network) to search a big graph.

A picture of a 2,000-op model is too big to read whole; the page lets one type a module name,
jump to it and see its group highlighted with the group's facts beside it. Everything is inside
the file: the SVG (graphviz's layout when ``dot`` is installed, else ``layout.layered_svg``),
the view as JSON, and the script and style from ``explorer.html``.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path

from trainonce.errors import TrainonceError
from trainonce.viz.dot import find_dot, run_dot, view_dot
from trainonce.viz.layout import layered_svg
from trainonce.viz.view import FROZEN, GraphView

_PLACEHOLDER = re.compile(r"/\*@(TITLE|DATA|SVG)@\*/")


def graph_svg(view: GraphView) -> str:
    """Inline SVG of the view: graphviz's layout if available (it draws far fewer crossings),
    otherwise the built-in layered one. Namespace declarations and the XML prologue go: inside
    HTML they are implied, and the page must not name any URL."""
    if find_dot() is None:
        return layered_svg(view)
    try:
        svg = run_dot(view_dot(view, legend=False), "svg")
    except TrainonceError:  # a graphviz that cannot lay this graph out: the page still works
        return layered_svg(view)
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    return re.sub(r"<!--.*?-->\n?", "", svg, flags=re.DOTALL)


def page_data(view: GraphView) -> dict[str, object]:
    """The JSON the page's script reads: boxes, groups with their members, legend."""
    members: dict[int, list[str]] = {g.id: [] for g in view.groups}
    affected: dict[int, list[str]] = {g.id: [] for g in view.groups}
    for node in view.nodes:
        for g in node.groups:
            members[g].append(node.id)
        for g in node.affected:
            affected[g].append(node.id)
    return {
        "title": view.title,
        "headline": view.headline,
        "nodes": [{"id": n.id, "kind": n.kind, "title": n.title, "lines": n.lines, "tooltip": n.tooltip,
                   "groups": n.groups, "affected": n.affected, "search": n.search} for n in view.nodes],
        "groups": [{"id": g.id, "label": g.label, "colour": g.colour, "prunable": g.prunable, "title": g.title, "facts": g.facts,
                    "tensors": g.tensors, "members": members[g.id], "affected": affected[g.id]}
                   for g in view.groups],
        "legend": view.legend,
        "frozen": FROZEN,  # legend rows of this colour are drawn hatched, like the boxes
    }


def explorer_page(view: GraphView) -> str:
    template = resources.files("trainonce.viz").joinpath("explorer.html").read_text(encoding="utf-8")
    data = json.dumps(page_data(view), separators=(",", ":"))
    # "<" only occurs inside JSON strings, where \u003c means the same: nothing can end the <script>
    parts = {"TITLE": html.escape(view.title), "DATA": data.replace("<", "\\u003c"), "SVG": graph_svg(view)}
    return _PLACEHOLDER.sub(lambda match: parts[match[1]], template)


def write_html(view: GraphView, path: str | Path) -> str:
    Path(path).write_text(explorer_page(view), encoding="utf-8")
    return str(path)
