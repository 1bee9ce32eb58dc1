"""Writing graphviz pictures: DOT text, rendered by the ``dot`` program when it is installed."""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

from trainonce.errors import TrainonceError
from trainonce.viz.view import GraphView, ViewNode

FORMATS = ("svg", "pdf", "png")
SHAPES = {"op": "box", "joint": "ellipse", "input": "box", "output": "box"}


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def find_dot() -> str | None:
    """Path of graphviz's ``dot`` program, or None when graphviz is not installed."""
    return shutil.which("dot")


def run_dot(dot_source: str, fmt: str, output: str | None = None) -> str:
    """Run ``dot -T<fmt>``; returns its stdout (empty when ``output`` is a file name)."""
    program = find_dot()
    if program is None:
        raise TrainonceError(
            "rendering needs graphviz's 'dot' program, which is not installed: run 'apt-get install graphviz' "
            "(Debian/Ubuntu), 'brew install graphviz' (macOS) or 'conda install graphviz', or render to a .dot "
            "or .html file")
    command = [program, f"-T{fmt}", *(["-o", output] if output else [])]
    result = subprocess.run(command, input=dot_source, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise TrainonceError(f"graphviz failed to render {output or fmt}: {result.stderr.strip()[:400]}")
    return result.stdout


def write_graph(dot_source: str, path: str | Path) -> str:
    """Write ``dot_source`` to ``path``: ``.dot``/``.gv`` as text, ``.svg``/``.pdf``/``.png`` via graphviz."""
    target = Path(path)
    suffix = target.suffix.lstrip(".").lower()
    if suffix in ("dot", "gv"):
        target.write_text(dot_source)
        return str(target)
    if suffix not in FORMATS:
        raise TrainonceError(f"cannot render to '{target.name}': use a .svg, .pdf, .png, .dot or .html file name")
    run_dot(dot_source, suffix, str(target))
    return str(target)


def _label(node: ViewNode) -> str:
    """An HTML-like label: the module name in bold over the detail lines."""
    lines = [f"<B>{html.escape(node.title)}</B>", *(html.escape(line) for line in node.lines)]
    return "<" + "<BR/>".join(lines) + ">"


def _legend(view: GraphView) -> str:
    rows = "".join(
        f'<TR><TD BGCOLOR="{colour}" WIDTH="16"> </TD><TD ALIGN="LEFT">{html.escape(text)}</TD></TR>'
        for colour, text in view.legend)
    return f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3"><TR><TD COLSPAN="2"><B>legend</B></TD></TR>{rows}</TABLE>>'


def view_dot(view: GraphView, legend: bool = True) -> str:
    """DOT text of a ``GraphView``. Every node keeps its view id as SVG id and class, so the
    explorer page can find the boxes graphviz drew; ``legend=False`` leaves the legend table
    out (the page lists it beside the picture)."""
    title = "<" + "<BR/>".join([f"<B>{html.escape(view.title)}</B>", *map(html.escape, view.headline)]) + ">"
    lines = [
        "digraph dependencies {",
        f"  graph [rankdir=TB, labelloc=t, fontname=Helvetica, fontsize=12, ranksep=0.35, nodesep=0.25, label={title}];",
        '  node [fontname=Helvetica, fontsize=9, margin="0.08,0.04"];',
        "  edge [arrowsize=0.6, color=\"#555555\"];",
    ]
    for node in view.nodes:
        style = ["filled"] if len(node.colours) == 1 else ["striped"]
        if node.kind == "op" and len(node.colours) == 1:
            style.append("rounded")
        if node.frozen:
            style.append("dashed")
        classes = " ".join(["node-" + node.kind, *(["frozen"] if node.frozen else [])])
        lines.append(
            f"  {node.id} [id={quote(node.id)}, class={quote(classes)}, shape={SHAPES[node.kind]}, "
            f"style={quote(','.join(style))}, fillcolor={quote(':'.join(node.colours))}, "
            f"label={_label(node)}, tooltip={quote(node.tooltip or node.title)}];")
    lines.extend(f"  {a} -> {b};" for a, b in view.edges)
    if legend:
        lines.append(f"  legend [shape=plaintext, label={_legend(view)}];")
    lines.append("}")
    return "\n".join(lines)
