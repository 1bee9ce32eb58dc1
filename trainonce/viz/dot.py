"""Writing graphviz pictures: DOT text, rendered by the ``dot`` program when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from trainonce.errors import TrainonceError

FORMATS = ("svg", "pdf", "png")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_graph(dot_source: str, path: str | Path) -> str:
    """Write ``dot_source`` to ``path``: ``.dot``/``.gv`` as text, ``.svg``/``.pdf``/``.png`` via graphviz."""
    target = Path(path)
    suffix = target.suffix.lstrip(".").lower()
    if suffix in ("dot", "gv"):
        target.write_text(dot_source)
        return str(target)
    if suffix not in FORMATS:
        raise TrainonceError(f"cannot render to '{target.name}': use a .svg, .pdf, .png or .dot file name")
    program = shutil.which("dot")
    if program is None:
        raise TrainonceError(
            "rendering needs graphviz's 'dot' program, which is not installed: run 'apt-get install graphviz' "
            "(Debian/Ubuntu), 'brew install graphviz' (macOS) or 'conda install graphviz', or render to a .dot file")
    result = subprocess.run([program, f"-T{suffix}", "-o", str(target)], input=dot_source, text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise TrainonceError(f"graphviz failed to render '{target}': {result.stderr.strip()[:400]}")
    return str(target)
