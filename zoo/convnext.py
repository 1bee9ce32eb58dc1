"""ConvNeXt: depthwise 7x7 conv, permute to channels-last, LayerNorm + MLP on the last
dim, a layer-scale gamma multiplied in, permute back, residual add; downsampling via a
hand-written channels-first LayerNorm + 2x2/2 conv. Exercises permutes, non-module
parameters (gamma) and custom norms."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize, layer_scale
from zoo.layers import LayerNorm2d


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = layer_scale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return shortcut + x


class ConvNeXt(nn.Module):
    def __init__(self, dims: tuple[int, ...] = (24, 48, 96), depths: tuple[int, ...] = (2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 2, stride=2), LayerNorm2d(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
            )
        self.stages = nn.ModuleList(
            [nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)]) for d, n in zip(dims, depths, strict=False)]
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages, strict=False):
            x = stage(down(x))
        x = self.norm(x.mean([-2, -1]))  # global average pool then LayerNorm
        return self.head(x)


def convnext_small() -> tuple[nn.Module, torch.Tensor]:
    """Tiny ConvNeXt (dims 24/48/96, depths 2/2/2) with layer-scale gammas ~U(0.5, 1.5)."""
    torch.manual_seed(0)
    return finalize(ConvNeXt()), torch.randn(1, 3, 32, 32)
