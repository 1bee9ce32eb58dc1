"""Super-networks for erasing mode (removing whole operators, branches or blocks, as in
OTOv3): many parallel or residual branches joined by sums (add) or concatenation (cat).

- `darts_supernet`: DARTS-like cells, every intermediate node is the sum of all candidate
  operations (conv, separable convs, dilated conv, pool + 1x1 conv, identity) on every
  earlier node; the cell output concatenates the intermediate nodes.
- `stacked_unets`: two hourglass U-Nets in a row with residual conv blocks, maxpool down,
  ConvTranspose2d up and concat skips.
- `super_residual`: residual blocks `x + b3(x) + b5(x) + b7(x)` with three parallel
  branches of kernel 3, 5 and 7.
- `deep_plain_residual`: twelve plain residual blocks at constant width (block erasure).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


# --------------------------------------------------------------------------- DARTS
class ReLUConvBN(nn.Sequential):
    """DARTS ordering: ReLU -> Conv2d (no bias) -> BatchNorm2d."""

    def __init__(self, c_in: int, c_out: int, k: int, dilation: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, k, 1, dilation * (k // 2), dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """ReLU -> depthwise kxk (optionally dilated) -> pointwise 1x1 -> BatchNorm2d."""

    def __init__(self, c: int, k: int, dilation: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c, c, k, 1, dilation * (k // 2), dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


class PoolConv(nn.Sequential):
    """3x3 average pool followed by a 1x1 conv-BN, so the pool candidate has parameters."""

    def __init__(self, c: int) -> None:
        super().__init__(
            nn.AvgPool2d(3, 1, 1, count_include_pad=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


def candidate_ops(c: int) -> nn.ModuleDict:
    """The candidate operations of one edge, all mapping c -> c channels at stride 1."""
    return nn.ModuleDict({
        "conv_3x3": ReLUConvBN(c, c, 3),
        "sep_conv_3x3": SepConv(c, 3),
        "sep_conv_5x5": SepConv(c, 5),
        "dil_conv_3x3": ReLUConvBN(c, c, 3, dilation=2),
        "avg_pool_3x3": PoolConv(c),
        "skip_connect": nn.Identity(),
    })


class MixedEdge(nn.Module):
    """One edge of the supernet: the sum of every candidate operation on its input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.ops = candidate_ops(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(op(x) for op in self.ops.values())


class MixedNode(nn.Module):
    """An intermediate node: the sum of one mixed edge from each earlier node."""

    def __init__(self, c: int, num_inputs: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(c) for _ in range(num_inputs))

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return sum(edge(h) for edge, h in zip(self.edges, states, strict=True))


class DartsCell(nn.Module):
    """Two input nodes (the two previous cell outputs, each 1x1-preprocessed to c channels)
    and `steps` intermediate nodes; node i sums the mixed edges from all earlier nodes.
    Output: cat(intermediate nodes) -> 1x1 conv-BN back to c channels."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, steps: int) -> None:
        super().__init__()
        self.pre0 = ReLUConvBN(c_prev_prev, c, 1)
        self.pre1 = ReLUConvBN(c_prev, c, 1)
        self.nodes = nn.ModuleList(MixedNode(c, 2 + i) for i in range(steps))
        self.project = nn.Sequential(nn.Conv2d(steps * c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in self.nodes:
            states.append(node(states))
        return self.project(torch.cat(states[2:], dim=1))


class DartsSupernet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        stem: int = 16,
        cells: tuple[tuple[int, int], ...] = ((16, 3), (16, 2), (24, 3), (24, 2)),
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem))
        c_pp, c_p = stem, stem
        self.cells = nn.ModuleList()
        for c, steps in cells:
            self.cells.append(DartsCell(c_pp, c_p, c, steps))
            c_pp, c_p = c_p, c
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean((2, 3)))


def darts_supernet() -> tuple[nn.Module, torch.Tensor]:
    """DARTS-like supernet: 4 cells, nodes sum 6 candidate ops per edge, cells concat nodes."""
    torch.manual_seed(0)
    return finalize(DartsSupernet()), torch.randn(1, 3, 16, 16)


# --------------------------------------------------------------------------- stacked U-Nets
class ResidualConvBlock(nn.Module):
    """x + conv-BN-ReLU-conv-BN(x), then ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.block = nn.Sequential(ConvBNAct(c, c), ConvBNAct(c, c, act=None))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.block(x))


class EncoderLevel(nn.Sequential):
    """conv-BN-ReLU to the level width, then a residual conv block."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(ConvBNAct(c_in, c_out), ResidualConvBlock(c_out))


class HourglassUNet(nn.Module):
    """Three-level U-Net (widths b, 2b, 4b) mapping b -> b channels at the input resolution."""

    def __init__(self, b: int) -> None:
        super().__init__()
        self.enc1 = EncoderLevel(b, b)
        self.enc2 = EncoderLevel(b, 2 * b)
        self.enc3 = EncoderLevel(2 * b, 4 * b)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2)
        self.dec2 = EncoderLevel(4 * b, 2 * b)
        self.up1 = nn.ConvTranspose2d(2 * b, b, 2, stride=2)
        self.dec1 = EncoderLevel(2 * b, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        x = self.enc3(self.pool(e2))
        x = self.dec2(torch.cat([self.up2(x), e2], dim=1))
        return self.dec1(torch.cat([self.up1(x), e1], dim=1))


class StackedUNets(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 8) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, base)
        self.unet1 = HourglassUNet(base)
        self.unet2 = HourglassUNet(base)
        self.head = nn.Conv2d(base, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.unet2(self.unet1(self.stem(x))))


def stacked_unets() -> tuple[nn.Module, torch.Tensor]:
    """Two stacked 3-level U-Nets (residual blocks, concat skips), 2-class segmentation map."""
    torch.manual_seed(0)
    return finalize(StackedUNets()), torch.randn(1, 3, 32, 32)


# --------------------------------------------------------------------------- super residual
class KernelBranch(nn.Sequential):
    """conv kxk-BN-ReLU-conv kxk-BN at constant width (padding k // 2)."""

    def __init__(self, c: int, k: int) -> None:
        super().__init__(ConvBNAct(c, c, k), ConvBNAct(c, c, k, act=None))


class SuperResidualBlock(nn.Module):
    """relu(x + b3(x) + b5(x) + b7(x)): three erasable parallel branches and the identity."""

    def __init__(self, c: int, kernels: tuple[int, ...] = (3, 5, 7)) -> None:
        super().__init__()
        self.branches = nn.ModuleDict({f"b{k}": KernelBranch(c, k) for k in kernels})
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for branch in self.branches.values():
            out = out + branch(x)
        return self.act(out)


class SuperResidualNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16, blocks_per_stage: int = 2) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, width)
        stages: list[nn.Module] = []
        c_prev = width
        for i, c in enumerate((width, 2 * width, 4 * width)):
            layers: list[nn.Module] = []
            if i > 0:  # stride-2 conv-BN transition (not erasable)
                layers.append(ConvBNAct(c_prev, c, 3, stride=2, act=None))
            layers.extend(SuperResidualBlock(c) for _ in range(blocks_per_stage))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


def super_residual_net(
    in_channels: int = 3, num_classes: int = 10, width: int = 16, blocks_per_stage: int = 2
) -> nn.Module:
    """A SuperResidualNet in eval mode with randomised norms; `in_channels=1` suits
    Fashion-MNIST (1x28x28 inputs)."""
    torch.manual_seed(0)
    return finalize(SuperResidualNet(in_channels, num_classes, width, blocks_per_stage))


def super_residual() -> tuple[nn.Module, torch.Tensor]:
    """Residual CNN whose blocks sum the identity and 3x3, 5x5 and 7x7 conv branches."""
    model = super_residual_net()
    return model, torch.randn(1, 3, 32, 32)


# --------------------------------------------------------------------------- deep plain residual
class PlainResidualBlock(nn.Module):
    """relu(x + bn2(conv2(relu(bn1(conv1(x)))))) at constant width."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class DeepPlainResidual(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16, depth: int = 12) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, width)
        half = depth // 2
        self.blocks1 = nn.Sequential(*(PlainResidualBlock(width) for _ in range(half)))
        self.transition = ConvBNAct(width, width, stride=2)
        self.blocks2 = nn.Sequential(*(PlainResidualBlock(width) for _ in range(depth - half)))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks2(self.transition(self.blocks1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def deep_plain_residual() -> tuple[nn.Module, torch.Tensor]:
    """Twelve identical plain residual blocks at width 16, one stride-2 transition."""
    torch.manual_seed(0)
    return finalize(DeepPlainResidual()), torch.randn(1, 3, 16, 16)
