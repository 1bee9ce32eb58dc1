"""Vision Transformer written the timm way: ONE fused qkv Linear whose output is
reshaped to (3, heads, head_dim) — pruning must respect that q/k/v and heads are
interleaved inside a single weight. Two attention flavours:

* fused (`vit_small`): F.scaled_dot_product_attention and reshape(B, N, C) with C the
  *input* width, exactly like timm, which pins the attention width to the embed dim.
* eager (`vit_small_eager`): attention by hand and reshape(B, N, -1), so heads can be
  pruned.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.init import finalize


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, fused_attn: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v)
            x = x.transpose(1, 2).reshape(B, N, C)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(-1)
            x = attn @ v
            x = x.transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, fused_attn: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, fused_attn)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch: int, c_in: int, dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch) ** 2
        self.proj = nn.Conv2d(c_in, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)


class VisionTransformer(nn.Module):
    def __init__(
        self,
        img_size: int = 32,
        patch: int = 8,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        num_classes: int = 10,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch, 3, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, fused_attn=fused_attn) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_small() -> tuple[nn.Module, torch.Tensor]:
    """timm-style ViT (dim 64, 4 heads, depth 2, patch 8), fused qkv + SDPA."""
    torch.manual_seed(0)
    return finalize(VisionTransformer(fused_attn=True)), torch.randn(1, 3, 32, 32)


def vit_small_eager() -> tuple[nn.Module, torch.Tensor]:
    """Same ViT with hand-written attention and reshape(B, N, -1): head-prunable."""
    torch.manual_seed(0)
    return finalize(VisionTransformer(fused_attn=False)), torch.randn(1, 3, 32, 32)
