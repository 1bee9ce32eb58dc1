"""ResNeXt: grouped 3x3 convs (groups=4) inside bottlenecks. Pruning must remove whole
channels per group evenly (or whole groups) to keep in_channels divisible by groups."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


class ResNeXtBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, cardinality: int, group_width: int) -> None:
        super().__init__()
        d = cardinality * group_width
        self.conv1 = nn.Conv2d(c_in, d, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(d)
        self.conv2 = nn.Conv2d(d, d, 3, stride, 1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(d)
        self.conv3 = nn.Conv2d(d, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ResNeXt(nn.Module):
    def __init__(self, blocks: tuple[int, ...] = (1, 2, 1), cardinality: int = 4, width: int = 4, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c_in = 32
        for i, n in enumerate(blocks):
            group_width = width * 2**i
            c_out = 64 * 2**i
            for j in range(n):
                layers.append(ResNeXtBlock(c_in, c_out, 2 if (j == 0 and i > 0) else 1, cardinality, group_width))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x))).flatten(1)
        return self.fc(x)


def resnext_small() -> tuple[nn.Module, torch.Tensor]:
    """ResNeXt with cardinality 4 and grouped 3x3 convs (width per group 4/8/16)."""
    torch.manual_seed(0)
    return finalize(ResNeXt()), torch.randn(1, 3, 32, 32)
