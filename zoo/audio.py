"""1-D convolutional audio classifier: Conv1d/BatchNorm1d (3-D activations) with a
residual add, global average pooling over time and a Linear head."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


def conv_bn1d(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm1d(c_out))


class AudioConv1d(nn.Module):
    def __init__(self, c_in: int = 1, width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = conv_bn1d(c_in, width // 2, 9, 2)
        self.conv2 = conv_bn1d(width // 2, width, 5, 2)
        self.conv3 = conv_bn1d(width, width, 3)
        self.conv4 = conv_bn1d(width, width, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        y = self.relu(self.conv3(x))
        x = self.relu(x + self.conv4(y))  # residual couples conv2 and conv4 outputs
        return self.fc(x.mean(-1))


def audio_conv1d() -> tuple[nn.Module, torch.Tensor]:
    """Conv1d+BN1d+ReLU x4 with a residual, GAP over time, 1x1x400 waveform input."""
    torch.manual_seed(0)
    return finalize(AudioConv1d()), torch.randn(1, 1, 400)
