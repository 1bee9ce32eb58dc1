#!/usr/bin/env bash
# The main job: install, then train a small residual CNN on scikit-learn's digits with HESSO,
# construct the compact model and print accuracy, parameters, MACs and latency before/after
# (about a minute on 2 CPU cores). Plots, history and the compact model go to trainonce-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1
.venv/bin/trainonce demo "$@"
