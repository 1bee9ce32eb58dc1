"""Fault-tolerant resume: kill a training process mid-pruning, restart it, get the same bits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import trainonce
from trainonce.errors import TrainonceError

from .resume_worker import make_optimizer
from .test_hesso import SmallResNet, small_setup

ROOT = Path(__file__).resolve().parents[2]


def run_worker(*args: str, kill_after: int | None = None) -> None:
    command = [sys.executable, "-m", "tests.optim.resume_worker", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kill_after is None:
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        return
    process = subprocess.Popen([*command, "--delay", "0.2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"checkpoint {kill_after}":
            process.send_signal(signal.SIGKILL)  # no clean-up, no final save: a crash
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("optimizer", ["hesso", "dhspg", "cric"])
def test_killed_run_resumes_to_the_same_bits(optimizer: str, tmp_path: Path) -> None:
    run_worker(optimizer, str(tmp_path / "straight.ckpt"), str(tmp_path / "straight.pt"))
    run_worker(optimizer, str(tmp_path / "crash.ckpt"), str(tmp_path / "crash.pt"), kill_after=12)  # mid-pruning
    assert not (tmp_path / "crash.pt").exists()
    run_worker(optimizer, str(tmp_path / "crash.ckpt"), str(tmp_path / "crash.pt"))
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "crash.pt", weights_only=True)
    assert int(straight["zero"].sum()) > 0
    assert torch.equal(straight["zero"], resumed["zero"])
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_mismatched_or_corrupted_checkpoints_are_refused(tmp_path: Path) -> None:
    model, inputs, space = small_setup()
    opt = make_optimizer("hesso", model, space)
    path = tmp_path / "run.ckpt"
    trainonce.save_checkpoint(path, model, opt, step=0)

    other = SmallResNet(width=8)
    with pytest.raises(TrainonceError, match="different model"):
        trainonce.load_checkpoint(path, other, make_optimizer("hesso", other, trainonce.analyze(other, inputs)))
    with pytest.raises(TrainonceError, match="different optimizer class"):
        trainonce.load_checkpoint(path, model, make_optimizer("dhspg", model, space))
    narrower = trainonce.analyze(model, inputs, exclude=("block.0",))
    with pytest.raises(TrainonceError, match="different search space"):
        trainonce.load_checkpoint(path, model, make_optimizer("hesso", model, narrower))

    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(TrainonceError, match="truncated or corrupted"):
        trainonce.load_checkpoint(path, model, opt)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(TrainonceError, match="not a trainonce checkpoint"):
        trainonce.load_checkpoint(path, model, opt)
    with pytest.raises(TrainonceError, match="no checkpoint"):
        trainonce.load_checkpoint(tmp_path / "missing.ckpt", nn.Linear(1, 1), opt)
