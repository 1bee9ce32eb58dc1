"""One entry point for every picture of a ``GraphView``, chosen by the file name's suffix."""

from __future__ import annotations

from pathlib import Path

from trainonce.viz.dot import view_dot, write_graph
from trainonce.viz.html import write_html
from trainonce.viz.view import GraphView


def render_view(view: GraphView, path: str | Path) -> str:
    """``.html``: the self-contained explorer; ``.svg``/``.pdf``/``.png``: graphviz; ``.dot``: its text."""
    if Path(path).suffix.lower() == ".html":
        return write_html(view, path)
    return write_graph(view_dot(view), path)
