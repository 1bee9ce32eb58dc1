"""User extensions a pruning tracer cannot see inside: a torch.autograd.Function with a
hand-written backward, and a torch.library custom operator (opaque to FX/export, with a
fake kernel for shape propagation and a registered autograd formula)."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize
from zoo.layers import ConvBNAct


class ScaledTanh(torch.autograd.Function):
    """y = a * tanh(x / a) (a soft clamp); elementwise, so channels pass through."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: float) -> torch.Tensor:
        y = torch.tanh(x / a)
        ctx.save_for_backward(y)
        ctx.a = a
        return a * y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y), None


@torch.library.custom_op("zoo::channel_mix", mutates_args=())
def channel_mix(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """out[b, o, h, w] = sum_c weight[o, c] * x[b, c, h, w]  (a 1x1 conv in disguise)."""
    return torch.einsum("bchw,oc->bohw", x, weight).contiguous()


@channel_mix.register_fake
def _(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    B, _, H, W = x.shape
    return x.new_empty(B, weight.shape[0], H, W)


def _channel_mix_setup(ctx, inputs, output) -> None:
    x, weight = inputs
    ctx.save_for_backward(x, weight)


def _channel_mix_backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, weight = ctx.saved_tensors
    return torch.einsum("bohw,oc->bchw", grad, weight), torch.einsum("bohw,bchw->oc", grad, x)


channel_mix.register_autograd(_channel_mix_backward, setup_context=_channel_mix_setup)


class ChannelMix(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / c_in**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_mix(x, self.weight)


class CustomOpNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(3, 16)
        self.conv2 = ConvBNAct(16, 32, stride=2)
        self.mix = ChannelMix(32, 24)
        self.conv3 = ConvBNAct(24, 32, stride=2)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = ScaledTanh.apply(x, 2.0)
        x = self.mix(self.conv2(x))
        x = self.conv3(x)
        return self.head(x.mean((2, 3)))


def custom_op_model() -> tuple[nn.Module, torch.Tensor]:
    """CNN with a custom autograd.Function and a torch.library custom op between convs."""
    torch.manual_seed(0)
    return finalize(CustomOpNet()), torch.randn(1, 3, 16, 16)
