"""VGG-16-BN: a plain chain (no branches) with BN after every conv, a flatten and an
MLP classifier. The simplest pruning case, and a reference size for benchmarks."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize

CFG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, cfg: list[int | str] = CFG16, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c_in = v
        self.features = nn.Sequential(*layers)
        # At 32x32 input the five pools leave 512x1x1 -> 512 features after flatten.
        self.classifier = nn.Sequential(
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def vgg16_bn() -> tuple[nn.Module, torch.Tensor]:
    """Full-width CIFAR VGG-16-BN (15,253,578 params), OTO-style 512-512-512-10 classifier."""
    torch.manual_seed(0)
    return finalize(VGG()), torch.randn(1, 3, 32, 32)
