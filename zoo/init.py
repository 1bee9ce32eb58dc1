"""Shared initialisation helpers for zoo models.

Pruning bugs often hide behind default-initialised normalisation layers: with
running_mean=0, running_var=1, weight=1 and bias=0 a BatchNorm is (almost) the
identity, so a tool that forgets to slice a BN buffer still produces the right
numbers. `randomize_norms` gives every norm layer non-trivial state so such
bugs show up as numerical mismatches.
"""
from __future__ import annotations

import torch
import torch.nn as nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)


def is_norm_like(module: nn.Module) -> bool:
    """True for torch norm layers and any custom "*Norm*" module with a 1-D weight
    (e.g. hand-written channels-first LayerNorm, HF LlamaRMSNorm)."""
    if isinstance(module, _NORM_TYPES):
        return True
    weight = getattr(module, "weight", None)
    return (
        "norm" in type(module).__name__.lower()
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 1
    )


@torch.no_grad()
def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill running stats and affine parameters of all norm layers with random values.

    running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5), weight ~ U(0.5, 1.5),
    bias ~ N(0, 0.1). Deterministic for a given seed and module order.
    """
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std)

    def uniform_(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)

    for module in model.modules():
        running_mean = getattr(module, "running_mean", None)
        running_var = getattr(module, "running_var", None)
        if isinstance(running_mean, torch.Tensor) and isinstance(running_var, torch.Tensor):
            normal_(running_mean, 0.1)
            uniform_(running_var, 0.5, 1.5)
        if is_norm_like(module):
            weight = getattr(module, "weight", None)
            bias = getattr(module, "bias", None)
            if isinstance(weight, torch.Tensor):
                uniform_(weight, 0.5, 1.5)
            if isinstance(bias, torch.Tensor):
                normal_(bias, 0.1)
    return model


def layer_scale(dim: int) -> nn.Parameter:
    """A layer-scale gamma initialised ~U(0.5, 1.5) instead of the usual 1e-6, so the
    branch it scales actually contributes to the output (uses the global RNG)."""
    return nn.Parameter(torch.empty(dim).uniform_(0.5, 1.5))


def finalize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Randomise norm state and switch to eval mode (every factory ends with this)."""
    randomize_norms(model, seed)
    return model.eval()
