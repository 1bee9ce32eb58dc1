"""ResNets: residual adds tie the output channels of every block in a stage together
(the canonical coupled-channel group), 1x1 conv+BN downsample shortcuts, bottlenecks."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity  # in-place residual add, as in torchvision
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        num_classes: int = 10,
        imagenet_stem: bool = False,
    ) -> None:
        super().__init__()
        c0 = widths[0]
        if imagenet_stem:  # 7x7/2 conv + 3x3/2 maxpool
            self.conv1 = nn.Conv2d(3, c0, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:  # CIFAR stem: 3x3/1 conv, no maxpool
            self.conv1 = conv3x3(3, c0)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU(inplace=True)
        self.c_in = c0
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(self.c_in, planes, s))
            self.c_in = planes * block.expansion
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _build(model: nn.Module, size: int) -> tuple[nn.Module, torch.Tensor]:
    return finalize(model), torch.randn(1, 3, size, size)


def resnet18_cifar() -> tuple[nn.Module, torch.Tensor]:
    """Full CIFAR ResNet-18 (11,173,962 params): BasicBlocks, residual channel coupling."""
    torch.manual_seed(0)
    return _build(ResNet(BasicBlock, (2, 2, 2, 2)), 32)


def resnet50_cifar() -> tuple[nn.Module, torch.Tensor]:
    """Full CIFAR ResNet-50 (23,520,842 params): bottlenecks with 4x expansion."""
    torch.manual_seed(0)
    return _build(ResNet(Bottleneck, (3, 4, 6, 3)), 32)


IMAGENET_LAYERS: dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet_imagenet(depth: int, size: int = 224) -> tuple[nn.Module, torch.Tensor]:
    """Full ImageNet ResNet-``depth`` (torchvision's layer counts, 1000 classes; ResNet-152 has
    60,192,808 params). Not in the registry: it is for scaling benchmarks, not a test model."""
    torch.manual_seed(0)
    block, layers = IMAGENET_LAYERS[depth]
    return _build(ResNet(block, layers, num_classes=1000, imagenet_stem=True), size)


def resnet18_imagenet_small() -> tuple[nn.Module, torch.Tensor]:
    """ResNet-18 with the ImageNet stem (7x7/2 conv + maxpool), widths / 4."""
    torch.manual_seed(0)
    return _build(ResNet(BasicBlock, (2, 2, 2, 2), (16, 32, 64, 128), imagenet_stem=True), 64)


def resnet50_imagenet_small() -> tuple[nn.Module, torch.Tensor]:
    """Bottleneck ResNet-50 with the ImageNet stem, widths / 4."""
    torch.manual_seed(0)
    return _build(ResNet(Bottleneck, (3, 4, 6, 3), (16, 32, 64, 128), imagenet_stem=True), 64)
