"""Parameter counts: every distinct tensor once, as stored in a checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from trainonce.metrics import count_parameters
from zoo import build


def test_reference_counts() -> None:
    model, _ = build("resnet18_cifar")
    assert count_parameters(model) == 11_173_962


def test_tied_embedding_counted_once() -> None:
    model, _ = build("tied_embedding")
    assert model.head.weight is model.embed.weight
    naive = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert count_parameters(model) == naive - model.head.weight.numel()
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_distinct_parameters_sharing_memory_counted_once() -> None:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = nn.Parameter(model[0].weight.data)  # a different Parameter object, same memory
    assert model[1].weight is not model[0].weight
    assert count_parameters(model) == 16


def test_meta_and_frozen() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    assert count_parameters(model) == 4 * 3 + 3 + 3 * 2 + 2
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 3 * 2 + 2
