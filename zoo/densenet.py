"""DenseNet: every dense layer's output is torch.cat'ed onto the running feature map,
so one conv's output channels land at an offset inside many later convs' inputs
(and inside BatchNorms that normalise the concatenation)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.init import finalize


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 producing `growth` new channels."""

    def __init__(self, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.ModuleList):
    def __init__(self, n: int, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__([DenseLayer(c_in + i * growth, growth, bn_size) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.AvgPool2d(2, 2),
        )


class DenseNet(nn.Module):
    def __init__(
        self,
        growth: int = 8,
        block_config: tuple[int, ...] = (2, 3, 2),
        init_features: int = 16,
        bn_size: int = 4,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, init_features, 3, padding=1, bias=False),
            nn.BatchNorm2d(init_features),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c = init_features
        for i, n in enumerate(block_config):
            blocks.append(DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(block_config) - 1:
                blocks.append(Transition(c, c // 2))
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = F.relu(self.norm(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def densenet_small() -> tuple[nn.Module, torch.Tensor]:
    """DenseNet-121-style, growth 8, blocks (2, 3, 2): concat-heavy channel bookkeeping."""
    torch.manual_seed(0)
    return finalize(DenseNet()), torch.randn(1, 3, 32, 32)
