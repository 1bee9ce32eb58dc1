#!/usr/bin/env bash
# Create .venv and install trainonce with its development extras. torch is pinned through
# constraints.txt so that no package can pull a newer (CUDA) torch. Graphviz (for rendering
# dependency graphs) is installed when apt-get is available; everything else works without it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) 2>/dev/null \
    || echo "note: graphviz not installed (optional, for graph rendering)"
fi
