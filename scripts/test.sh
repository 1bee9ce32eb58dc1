#!/usr/bin/env bash
# The test suite (what CI runs): everything except tests marked slow.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
.venv/bin/python -m pytest -q -m "not slow" -p no:cacheprovider "$@"
