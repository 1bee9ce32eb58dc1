"""YOLOv8-style constructs: C2f (chunk into two halves, bottlenecks on the last chunk,
concat everything) and a model splitting channels with unequal torch.split sizes and a
channel slice x[:, :k]. Pruning must keep chunk halves equal and split sizes consistent."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


def Conv(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> ConvBNAct:
    """Ultralytics' Conv: Conv2d + BatchNorm2d + SiLU."""
    return ConvBNAct(c_in, c_out, k, stride, act=nn.SiLU)


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int = 2, shortcut: bool = True) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C2fNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = Conv(3, 16, 3, 2)
        self.c2f1 = C2f(16, 32, n=1)
        self.down = Conv(32, 64, 3, 2)
        self.c2f2 = C2f(64, 64, n=2)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c2f2(self.down(self.c2f1(self.stem(x))))
        return self.head(x.mean((2, 3)))


class SplitSliceNet(nn.Module):
    """Channels 0..7 / 8..23 / 24..47 go through different branches (torch.split with
    unequal sizes); a separate branch only sees x[:, :k]."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = Conv(3, 48, 3)
        self.sizes = [8, 16, 24]
        self.b0 = Conv(8, 8, 3)
        self.b1 = Conv(16, 16, 3)
        self.b2 = Conv(24, 24, 3)
        self.k = 12
        self.slice_branch = Conv(self.k, 16, 1)
        self.fuse = Conv(48 + 16, 32, 1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a, b, c = torch.split(x, self.sizes, dim=1)
        s = self.slice_branch(x[:, : self.k])
        x = torch.cat([self.b0(a), self.b1(b), self.b2(c), s], 1)
        return self.head(self.fuse(x).mean((2, 3)))


def c2f_small() -> tuple[nn.Module, torch.Tensor]:
    """YOLOv8 C2f blocks: chunk(2, 1), bottlenecks on the last chunk, cat, 1x1 conv."""
    torch.manual_seed(0)
    return finalize(C2fNet()), torch.randn(1, 3, 32, 32)


def split_slice_net() -> tuple[nn.Module, torch.Tensor]:
    """torch.split with unequal sizes [8, 16, 24] plus a channel slice x[:, :12]."""
    torch.manual_seed(0)
    return finalize(SplitSliceNet()), torch.randn(1, 3, 16, 16)
