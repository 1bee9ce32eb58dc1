"""Multi-branch CNNs: Inception (parallel branches of different widths concatenated),
FPN (lateral 1x1 convs, nearest upsampling + add, several outputs) and ShuffleNetV2
(chunk, concat and channel shuffle via view/transpose, which permutes channels)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.init import finalize
from zoo.layers import ConvBNAct


# --------------------------------------------------------------------------- Inception
class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self.b1 = ConvBNAct(c_in, c1, 1)
        self.b2 = nn.Sequential(ConvBNAct(c_in, c3r, 1), ConvBNAct(c3r, c3, 3))
        self.b3 = nn.Sequential(ConvBNAct(c_in, c5r, 1), ConvBNAct(c5r, c5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(c_in, cp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 32)
        self.inc1 = InceptionModule(32, 16, 8, 16, 4, 8, 8)  # -> 48
        self.pool = nn.MaxPool2d(2)
        self.inc2 = InceptionModule(48, 24, 12, 24, 6, 12, 12)  # -> 72
        self.fc = nn.Linear(72, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inc2(self.pool(self.inc1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def inception_small() -> tuple[nn.Module, torch.Tensor]:
    """Two Inception modules: four parallel branches of unequal width, concatenated."""
    torch.manual_seed(0)
    return finalize(InceptionNet()), torch.randn(1, 3, 16, 16)


# --------------------------------------------------------------------------- FPN
class FPN(nn.Module):
    """3-stage backbone + feature pyramid; returns a tuple of three maps. All laterals
    are added together, so the pyramid width is one coupled channel group."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.c3 = nn.Sequential(ConvBNAct(3, 16, stride=2), ConvBNAct(16, 24))
        self.c4 = ConvBNAct(24, 48, stride=2)
        self.c5 = ConvBNAct(48, 64, stride=2)
        self.lat3 = nn.Conv2d(24, width, 1)
        self.lat4 = nn.Conv2d(48, width, 1)
        self.lat5 = nn.Conv2d(64, width, 1)
        self.out3 = nn.Conv2d(width, width, 3, padding=1)
        self.out4 = nn.Conv2d(width, width, 3, padding=1)
        self.out5 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lat5(c5)
        p4 = self.lat4(c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lat3(c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        return self.out3(p3), self.out4(p4), self.out5(p5)


def fpn_small() -> tuple[nn.Module, torch.Tensor]:
    """Feature pyramid with upsample+add top-down path and a tuple of 3 outputs."""
    torch.manual_seed(0)
    return finalize(FPN()), torch.randn(1, 3, 32, 32)


# --------------------------------------------------------------------------- ShuffleNetV2
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    B, C, H, W = x.shape
    x = x.view(B, groups, C // groups, H, W).transpose(1, 2).contiguous()
    return x.view(B, C, H, W)


class ShuffleUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        c = c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvBNAct(c_in, c_in, 3, stride, groups=c_in, act=None), ConvBNAct(c_in, c, 1)
            )
        b2_in = c_in if stride > 1 else c
        self.branch2 = nn.Sequential(
            ConvBNAct(b2_in, c, 1), ConvBNAct(c, c, 3, stride, groups=c, act=None), ConvBNAct(c, c, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat([x1, self.branch2(x2)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64), repeats: tuple[int, ...] = (2, 2), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, 16, stride=1)]
        c_in = 16
        for w, n in zip(widths, repeats, strict=False):
            for i in range(n):
                layers.append(ShuffleUnit(c_in, w, 2 if i == 0 else 1))
                c_in = w
        layers.append(ConvBNAct(c_in, 128, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def shufflenet_small() -> tuple[nn.Module, torch.Tensor]:
    """ShuffleNetV2 units: chunk(2), concat, channel shuffle (view/transpose/view)."""
    torch.manual_seed(0)
    return finalize(ShuffleNetV2()), torch.randn(1, 3, 32, 32)
