"""U-Net: encoder features are torch.cat'ed with ConvTranspose2d-upsampled decoder
features (skip connections), so pruning an encoder conv changes a decoder conv's
input at an offset; ConvTranspose2d has its weight laid out (in, out, kH, kW)."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(ConvBNAct(c_in, c_out), ConvBNAct(c_out, c_out))


class UNet(nn.Module):
    def __init__(self, c_in: int = 3, num_classes: int = 2, base: int = 16) -> None:
        super().__init__()
        b = base
        self.enc1 = DoubleConv(c_in, b)
        self.enc2 = DoubleConv(b, 2 * b)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(2 * b, 4 * b)
        self.up2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2)
        self.dec2 = DoubleConv(4 * b, 2 * b)
        self.up1 = nn.ConvTranspose2d(2 * b, b, 2, stride=2)
        self.dec1 = DoubleConv(2 * b, b)
        self.out = nn.Conv2d(b, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        x = self.bottleneck(self.pool(e2))
        x = self.dec2(torch.cat([self.up2(x), e2], dim=1))
        x = self.dec1(torch.cat([self.up1(x), e1], dim=1))
        return self.out(x)


def unet_small() -> tuple[nn.Module, torch.Tensor]:
    """Two-level U-Net with ConvTranspose2d upsampling and concat skips, 2 classes."""
    torch.manual_seed(0)
    return finalize(UNet()), torch.randn(1, 3, 32, 32)
