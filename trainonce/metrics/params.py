"""Parameter counts that agree with what is stored on disk.

Tied weights (an embedding reused as the output projection, a module called twice) are one
tensor in memory and in a checkpoint, so they are counted once; summing ``p.numel()`` over
``named_parameters(remove_duplicate=False)`` would double-count them and make pruning ratios of
language models look better than they are.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import nn


def _identity(tensor: torch.Tensor) -> Hashable:
    """Same Parameter object, or distinct Parameter objects viewing the same memory: one tensor.

    Storage-based identity needs real memory; meta and other storage-less tensors fall back to
    object identity.
    """
    try:
        pointer = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        pointer = 0
    if pointer == 0 or tensor.device.type == "meta":
        return ("object", id(tensor))
    return (
        "storage",
        tensor.device.type,
        pointer,
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model``, each distinct tensor counted once.

    ``trainable_only`` skips parameters with ``requires_grad=False`` (frozen backbones).
    """
    seen: set[Hashable] = set()
    total = 0
    for _, parameter in model.named_parameters(remove_duplicate=False):
        if trainable_only and not parameter.requires_grad:
            continue
        key = _identity(parameter)
        if key in seen:
            continue
        seen.add(key)
        total += parameter.numel()
    return total
