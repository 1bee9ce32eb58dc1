"""HESSO under DistributedDataParallel (2 processes, gloo): same decisions, same result as 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "ddp_hesso.py")


def run(*command: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_two_ranks_match_one_process(tmp_path: Path) -> None:
    two = run(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", EXAMPLE,
              "--steps", "60", "--out", str(tmp_path / "ddp.pt"))
    assert "identical decisions on all 2 ranks" in two  # the script gathers every rank's decisions
    run(sys.executable, EXAMPLE, "--steps", "60", "--out", str(tmp_path / "single.pt"))
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    assert int((ddp["period_of"] >= 0).sum()) == 32
    assert torch.equal(ddp["period_of"], single["period_of"])
    for name, tensor in single["model"].items():
        assert torch.allclose(ddp["model"][name], tensor, atol=1e-3, rtol=1e-3), name
