"""Test-wide setup: offline HF, one torch thread, the zoo importable.

One thread by default: the tests run small ops, where thread hand-offs cost more than they
save, and a shared 2-core CI machine turns oversubscription into 10x slowdowns. Results must not
depend on it: ``TRAINONCE_TEST_THREADS=2 bash scripts/test.sh`` runs the suite with two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch

torch.set_num_threads(int(os.environ.get("TRAINONCE_TEST_THREADS", "1")))  # the suite must pass with 2 as well
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
