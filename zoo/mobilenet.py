"""MobileNetV2: inverted residuals with depthwise convs (groups == channels), so the
expand conv, the depthwise conv and its BNs must be pruned together; ReLU6; residual
only when stride 1 and widths match."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = c_in * expand_ratio
        self.use_res = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(c_in, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),  # depthwise
            nn.Conv2d(hidden, c_out, 1, bias=False),  # linear bottleneck
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    # t (expansion), c (channels), n (repeats), s (stride); CIFAR strides (stem stride 1).
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width_mult: float = 0.35, num_classes: int = 10) -> None:
        super().__init__()
        c_in = make_divisible(32 * width_mult)
        last = make_divisible(1280 * width_mult)
        features: list[nn.Module] = [ConvBNAct(3, c_in, 3, 1, act=nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            c_out = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        features.append(ConvBNAct(c_in, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def mobilenetv2_small() -> tuple[nn.Module, torch.Tensor]:
    """MobileNetV2 x0.35 for 32x32 input: depthwise convs and inverted residuals."""
    torch.manual_seed(0)
    return finalize(MobileNetV2(0.35)), torch.randn(1, 3, 32, 32)
