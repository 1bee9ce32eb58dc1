#!/usr/bin/env bash
# Create .venv and install trainonce with its development extras. torch is pinned through
# constraints.txt so that no package can pull a newer (CUDA) torch. System packages, installed
# when apt-get is available and we may use it: graphviz (renders dependency graphs) and chromium
# (the headless browser that tests the HTML graph explorer). Both are optional: without them the
# library says how to get graphviz, and the browser test is skipped with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"

missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
    ($sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null) 2>/dev/null \
      || echo "note: could not install ${missing[*]} with apt-get (optional: graph rendering / browser test)"
  else
    echo "note: ${missing[*]} not installed (optional: graph rendering / browser test)"
  fi
fi
