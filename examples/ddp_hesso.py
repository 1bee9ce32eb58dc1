"""HESSO under DistributedDataParallel: ``torchrun --nproc_per_node 2 examples/ddp_hesso.py``.

Every rank analyses the *unwrapped* model (the search space refers to its parameters, which DDP
shares), wraps it in DDP and trains on its slice of each global batch. Gradients are averaged by
DDP, so every rank scores groups identically; HESSO additionally broadcasts each decision from
rank 0. At the end the ranks' decisions are gathered and compared, and rank 0 builds the compact
model. Run without torchrun it trains in one process on the whole global batch, which gives the
same result up to float rounding (the model has no BatchNorm, whose batch statistics would be
per rank).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import trainonce
from trainonce.data import load_dataset


class Net(nn.Module):
    """A small residual CNN without BatchNorm."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        h = F.relu(h + self.conv2(F.relu(self.conv1(h))))
        return self.head(h.mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--out", default=None, help="write final weights and decisions here (rank 0)")
    args = parser.parse_args()

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial weights on every rank

    data = load_dataset("digits")
    model = Net()
    space = trainonce.analyze(model, data.x_train[:2])
    trained = nn.parallel.DistributedDataParallel(model) if distributed else model
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt = trainonce.HESSO(base, space, target_sparsity=0.5, start_step=10, pruning_steps=30, periods=5)

    local = args.global_batch // world
    generator = torch.Generator().manual_seed(1)  # the same global batches on every rank
    for _ in range(args.steps):
        batch = torch.randint(0, len(data.x_train), (args.global_batch,), generator=generator)
        mine = batch[rank * local:(rank + 1) * local]
        loss = F.cross_entropy(trained(data.x_train[mine]), data.y_train[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()

    decisions = opt.own_state["period_of"]
    if distributed:
        everyone = [torch.empty_like(decisions) for _ in range(world)]
        dist.all_gather(everyone, decisions)
        assert all(torch.equal(d, decisions) for d in everyone), "ranks chose different groups"
    if rank == 0:
        compact = space.construct(opt.redundant())
        accuracy = (compact(data.x_test).argmax(1) == data.y_test).float().mean().item()
        agreed = f", identical decisions on all {world} ranks" if distributed else ""
        print(f"world {world}: {opt.metrics().num_zero_groups} of {space.num_prunable} groups removed, "
              f"compact test accuracy {accuracy:.2%}{agreed}")
        if args.out:
            torch.save({"model": model.state_dict(), "period_of": decisions}, args.out)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
