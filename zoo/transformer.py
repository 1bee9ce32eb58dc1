"""Non-timm, non-HF transformer-ish models: PyTorch's own nn.TransformerEncoder (fused
in_proj_weight inside nn.MultiheadAttention, whose out_proj is a NonDynamicallyQuantizableLinear)
and an MLP-Mixer (token-mixing Linear applied over the *token* dim after a transpose)."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


class TorchTransformerClassifier(nn.Module):
    def __init__(self, c_in: int = 16, dim: int = 32, heads: int = 4, depth: int = 2, num_classes: int = 5) -> None:
        super().__init__()
        self.embed = nn.Linear(c_in, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.embed(x))
        return self.head(self.norm(x.mean(1)))


def torch_transformer() -> tuple[nn.Module, torch.Tensor]:
    """nn.TransformerEncoder (pre-norm, 2 layers, 4 heads) over a 1x10x16 sequence."""
    torch.manual_seed(0)
    return finalize(TorchTransformerClassifier()), torch.randn(1, 10, 16)


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    def __init__(self, img_size: int = 32, patch: int = 8, dim: int = 32, depth: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        tokens = (img_size // patch) ** 2
        self.stem = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, 32, 4 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


def mlp_mixer_small() -> tuple[nn.Module, torch.Tensor]:
    """MLP-Mixer: token-mixing Linear over the transposed token dim + channel MLP."""
    torch.manual_seed(0)
    return finalize(MLPMixer()), torch.randn(1, 3, 32, 32)
