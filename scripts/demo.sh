#!/usr/bin/env bash
# The main job: install, then analyse a CIFAR ResNet-18 and show the exact before/after of
# removing a random half of its prunable channels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1
.venv/bin/trainonce analyze zoo.resnet:resnet18_cifar --zero 0.5 --rows 14
