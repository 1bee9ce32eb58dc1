"""A training run that checkpoints every step; the resume test kills it and restarts it.

Usage: python -m tests.optim.resume_worker OPTIMIZER CHECKPOINT RESULT [--delay SECONDS]
Resumes from CHECKPOINT when it exists; writes the final weights and zero groups to RESULT.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

import trainonce
from trainonce.optim import Penalty

from .test_hesso import batches, small_setup

STEPS = 40


def make_optimizer(name: str, model: nn.Module, space: trainonce.SearchSpace) -> trainonce.optim.sparse.GroupSparseOptimizer:
    if name == "hesso":
        return trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True), space, 0.5,
                               start_step=5, pruning_steps=25, periods=5)
    if name == "cric":
        return trainonce.HESSOCRIC(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, 0.5, start_step=3,
                                   sampling_steps=4, max_cycles=2, hybrid_steps=6)
    return trainonce.DHSPG(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), space, 0.5, start_step=5,
                           pruning_steps=30, penalty=Penalty(0.5, 2.0, 10.0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("optimizer", choices=["hesso", "dhspg", "cric"])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _, space = small_setup()
    opt = make_optimizer(args.optimizer, model, space)
    start = trainonce.load_checkpoint(args.checkpoint, model, opt)["step"] + 1 if args.checkpoint.exists() else 0
    data = batches()
    model.train()
    for step in range(start, STEPS):
        x, y = data(step)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x) + 0.01 * torch.randn(x.shape[0], 5), y)  # RNG in the loop: resumed too
        loss.backward()
        opt.step(loss=loss) if isinstance(opt, trainonce.HESSOCRIC) else opt.step()
        trainonce.save_checkpoint(args.checkpoint, model, opt, step=step)
        print(f"checkpoint {step}", flush=True)
        time.sleep(args.delay)
    torch.save({"model": model.state_dict(), "zero": opt.zero_mask()}, args.result)


if __name__ == "__main__":
    sys.exit(main())
