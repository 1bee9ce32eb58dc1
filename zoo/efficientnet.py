"""EfficientNet-style MBConv with squeeze-and-excitation: the SE branch pools, squeezes
through 1x1 convs and gates the depthwise output with a sigmoid multiply, so the
expand conv, depthwise conv, SE expand conv and the gating must be pruned together."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, c_squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c_squeeze, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(c_squeeze, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * s


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, se_ratio: float = 0.25) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        self.block = nn.Sequential(
            ConvBNAct(c_in, hidden, 1, act=nn.SiLU) if expand != 1 else nn.Identity(),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.SiLU),
            SqueezeExcite(hidden, max(1, int(c_in * se_ratio))),
            ConvBNAct(hidden, c_out, 1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class EfficientNet(nn.Module):
    # (expand, channels, repeats, stride)
    SETTINGS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 40, 2, 2), (4, 64, 1, 2))

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, 24, 3, 1, act=nn.SiLU)]
        c_in = 24
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(MBConv(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(ConvBNAct(c_in, 128, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def efficientnet_small() -> tuple[nn.Module, torch.Tensor]:
    """MBConv + squeeze-excitation (sigmoid gating) + SiLU, 32x32 input."""
    torch.manual_seed(0)
    return finalize(EfficientNet()), torch.randn(1, 3, 32, 32)
