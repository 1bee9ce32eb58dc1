"""Swin Transformer: window partition/reverse via view+permute, shifted windows via
torch.roll with an attention mask buffer, a relative-position-bias *table* parameter
indexed by a registered long buffer (per-head: pruning heads must slice its columns),
and patch merging (cat of 4 strided slices -> LayerNorm(4C) -> Linear(4C, 2C))."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws * ws, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)


def window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    """(B * nW, ws * ws, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, num_heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)  # (ws^2, ws^2, 2)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, _ = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(N, N, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:  # (nW, N, N), windows are the fastest-varying part of B_
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask[None, :, None]
            attn = attn.view(B_, self.num_heads, N, N)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B_, N, -1)
        return self.proj(x)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, num_heads: int, window_size: int, shift: int) -> None:
        super().__init__()
        if resolution <= window_size:
            window_size, shift = resolution, 0
        self.resolution, self.window_size, self.shift = resolution, window_size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        mask = None
        if shift > 0:  # label the 9 regions created by the cyclic shift, mask across them
            img = torch.zeros(1, resolution, resolution, 1)
            cnt = 0
            for h in (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None)):
                for w in (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None)):
                    img[:, h, w, :] = cnt
                    cnt += 1
            win = window_partition(img, window_size).squeeze(-1)
            mask = win[:, None, :] - win[:, :, None]
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        H = W = self.resolution
        ws, s = self.window_size, self.shift
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = self.attn(window_partition(x, ws), self.attn_mask)
        x = window_reverse(x, ws, H, W)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x.reshape(B, L, C)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, C = x.shape
        H = W = self.resolution
        x = x.view(B, H, W, C)
        x0 = x[:, 0::2, 0::2]
        x1 = x[:, 1::2, 0::2]
        x2 = x[:, 0::2, 1::2]
        x3 = x[:, 1::2, 1::2]
        x = torch.cat([x0, x1, x2, x3], -1).view(B, -1, 4 * C)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    def __init__(
        self,
        img_size: int = 32,
        patch: int = 4,
        dim: int = 32,
        depths: tuple[int, ...] = (2, 2),
        heads: tuple[int, ...] = (2, 4),
        window_size: int = 4,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.patch_norm = nn.LayerNorm(dim)
        res = img_size // patch
        layers: list[nn.Module] = []
        for i, (depth, nh) in enumerate(zip(depths, heads, strict=False)):
            if i > 0:
                layers.append(PatchMerging(dim, res))
                dim, res = 2 * dim, res // 2
            for j in range(depth):
                layers.append(SwinBlock(dim, res, nh, window_size, 0 if j % 2 == 0 else window_size // 2))
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.layers(self.patch_norm(x))
        x = self.norm(x).mean(1)
        return self.head(x)


def swin_small() -> tuple[nn.Module, torch.Tensor]:
    """Tiny Swin (8x8 tokens, window 4, shifted blocks, one patch merging)."""
    torch.manual_seed(0)
    return finalize(SwinTransformer()), torch.randn(1, 3, 32, 32)
