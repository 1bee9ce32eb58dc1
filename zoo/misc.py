"""Small single-purpose models, each isolating one construct a pruning tool can break on."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.init import finalize
from zoo.layers import ConvBNAct


# --------------------------------------------------------------------------- shared weights
class SharedModuleNet(nn.Module):
    """The same conv and the same Linear module are each called twice in forward, so
    their input and output channels are coupled to themselves."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 16)
        self.shared_conv = nn.Conv2d(16, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.shared_fc = nn.Linear(16, 16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU())  # untied, prunable hidden layer
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(self.shared_conv(x))
        x = F.relu(self.bn(self.shared_conv(x)))  # second call of the same conv
        x = x.mean((2, 3))
        x = F.relu(self.shared_fc(x))
        x = x + self.shared_fc(x)  # second call of the same Linear
        return self.head(self.mlp(x))


class TiedEmbeddingLM(nn.Module):
    """Tiny LM whose output projection shares its weight with the input embedding."""

    def __init__(self, vocab: int = 100, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        x = x + self.mlp(self.norm1(x))
        return self.head(self.norm2(x))


def tied_weights() -> tuple[nn.Module, torch.Tensor]:
    """One nn.Conv2d and one nn.Linear each applied twice in forward (shared weights)."""
    torch.manual_seed(0)
    return finalize(SharedModuleNet()), torch.randn(1, 3, 16, 16)


def tied_embedding() -> tuple[nn.Module, torch.Tensor]:
    """Embedding tied with the output projection (head.weight = embed.weight)."""
    torch.manual_seed(0)
    return finalize(TiedEmbeddingLM()), torch.randint(0, 100, (1, 12), generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- several inputs
class TwoBranchNet(nn.Module):
    """An image branch and a vector branch fused by concat + Linear."""

    def __init__(self, n_features: int = 12, num_classes: int = 5) -> None:
        super().__init__()
        self.image_branch = nn.Sequential(ConvBNAct(3, 16), ConvBNAct(16, 32, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_branch = nn.Sequential(nn.Linear(n_features, 24), nn.LayerNorm(24), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(32 + 24, 32), nn.ReLU(), nn.Linear(32, num_classes))

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.image_branch(image), self.feature_branch(features)], dim=1)
        return self.fuse(x)


def _two_branch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = finalize(TwoBranchNet())
    return model, torch.randn(1, 3, 16, 16), torch.randn(1, 12)


def multi_input() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Two positional tensor inputs (image, vector), separate branches, concat fusion."""
    model, image, features = _two_branch()
    return model, (image, features)


def dict_input() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The two-branch model called with keyword tensors (image=..., features=...)."""
    model, image, features = _two_branch()
    return model, {"image": image, "features": features}


# --------------------------------------------------------------------------- norm variants
class GNResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class GroupNormNet(nn.Module):
    """Diffusion-UNet-style GroupNorm(4) + SiLU residual blocks; pruning must keep
    channel counts divisible by the number of groups (or prune whole groups)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 32, 3, padding=1)
        self.block1 = GNResBlock(32, 64)
        self.block2 = GNResBlock(64, 64)
        self.norm_out = nn.GroupNorm(4, 64)
        self.conv_out = nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(x)))


def groupnorm_net() -> tuple[nn.Module, torch.Tensor]:
    """Conv + GroupNorm(4 groups) + SiLU residual blocks (diffusion UNet style)."""
    torch.manual_seed(0)
    return finalize(GroupNormNet()), torch.randn(1, 3, 16, 16)


def instancenorm_net() -> tuple[nn.Module, torch.Tensor]:
    """Conv + InstanceNorm2d(affine) + ReLU (style transfer); one IN tracks running stats."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.InstanceNorm2d(16, affine=True),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.InstanceNorm2d(32, affine=True, track_running_stats=True),
        nn.ReLU(),
        nn.Conv2d(32, 3, 3, padding=1),
    )
    return finalize(model), torch.randn(1, 3, 16, 16)


class MLPBN1d(nn.Module):
    def __init__(self, c_in: int = 20, hidden: int = 64, num_classes: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(c_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_bn1d() -> tuple[nn.Module, torch.Tensor]:
    """Tabular MLP with Linear -> BatchNorm1d -> ReLU (BN on 2-D activations)."""
    torch.manual_seed(0)
    return finalize(MLPBN1d()), torch.randn(1, 20)


# --------------------------------------------------------------------------- conv variants
class PixelShuffleNet(nn.Module):
    """ESPCN-like super-resolution: the last conv has 3 * r^2 outputs that PixelShuffle
    rearranges, so its output channels can only go in blocks of r^2."""

    def __init__(self, r: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.to_sub_pixels = nn.Conv2d(32, 3 * r * r, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.to_sub_pixels(self.body(x)))


def pixel_shuffle_net() -> tuple[nn.Module, torch.Tensor]:
    """Conv stack ending in Conv -> PixelShuffle(2) (16x16 -> 32x32)."""
    torch.manual_seed(0)
    return finalize(PixelShuffleNet()), torch.randn(1, 3, 16, 16)


def depthwise_multiplier() -> tuple[nn.Module, torch.Tensor]:
    """Depthwise conv with channel multiplier 2 (groups=16, 16 -> 32 channels): each
    input channel owns 2 consecutive output channels."""
    torch.manual_seed(0)
    model = nn.Sequential(
        ConvBNAct(3, 16),
        nn.Conv2d(16, 32, 3, padding=1, groups=16, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        ConvBNAct(32, 32, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    return finalize(model), torch.randn(1, 3, 16, 16)


def conv3d_net() -> tuple[nn.Module, torch.Tensor]:
    """Tiny video net: Conv3d + BatchNorm3d + ReLU x2, global pool, Linear."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU(),
        nn.Conv3d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(16), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    return finalize(model), torch.randn(1, 3, 8, 16, 16)


def convtranspose1d_net() -> tuple[nn.Module, torch.Tensor]:
    """1-D decoder: Conv1d, ConvTranspose1d (weight (in, out/groups, k)), and a *grouped*
    ConvTranspose1d (groups=2)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(4, 16, 3, padding=1), nn.ReLU(),
        nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
        nn.ConvTranspose1d(8, 16, 4, stride=2, padding=1, groups=2), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Conv1d(16, 2, 1),
    )
    return finalize(model), torch.randn(1, 4, 32)


def prelu_net() -> tuple[nn.Module, torch.Tensor]:
    """PReLU with a per-channel parameter (must be pruned with the conv) and a shared one."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.PReLU(16),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.PReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    with torch.no_grad():  # non-trivial per-channel slopes
        model[2].weight.uniform_(0.05, 0.5)
    return finalize(model), torch.randn(1, 3, 16, 16)


# --------------------------------------------------------------------------- reshapes / flatten
class ViewFlattenNet(nn.Module):
    """Conv features pooled to 2x2 and flattened with x.view(B, -1): conv channel c feeds
    Linear inputs 4c..4c+3."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(ConvBNAct(3, 16), nn.MaxPool2d(2), ConvBNAct(16, 32), nn.AdaptiveAvgPool2d((2, 2)))
        self.fc1 = nn.Linear(32 * 4, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


def view_flatten_net() -> tuple[nn.Module, torch.Tensor]:
    """x.view(B, -1) flatten of a C x 2 x 2 map into a Linear."""
    torch.manual_seed(0)
    return finalize(ViewFlattenNet()), torch.randn(1, 3, 16, 16)


class TokenHeadNet(nn.Module):
    """Conv features reshaped to tokens (B, N, C); Linears act on the last dim of a 3-D
    tensor and the output stays 3-D (per-token classification)."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.conv = ConvBNAct(3, 24, stride=2)
        self.fc1 = nn.Linear(24, 48)
        self.norm = nn.LayerNorm(48)
        self.head = nn.Linear(48, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).flatten(2).transpose(1, 2)  # (B, N, C)
        return self.head(self.norm(F.gelu(self.fc1(x))))


def linear3d_head() -> tuple[nn.Module, torch.Tensor]:
    """Linear layers applied to a 3-D (B, N, C) tensor, 3-D output."""
    torch.manual_seed(0)
    return finalize(TokenHeadNet()), torch.randn(1, 3, 16, 16)


class EinsumNet(nn.Module):
    """Channel mixing and attention pooling written with torch.einsum on raw Parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = ConvBNAct(3, 16)
        self.mix = nn.Parameter(torch.randn(24, 16) / 4)  # (out, in)
        self.bn = nn.BatchNorm2d(24)
        self.attn = nn.Conv2d(24, 1, 1)
        self.head = nn.Linear(24, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = F.relu(self.bn(torch.einsum("bchw,dc->bdhw", x, self.mix)))
        w = self.attn(x).flatten(1).softmax(-1)  # (B, HW)
        x = torch.einsum("bcn,bn->bc", x.flatten(2), w)
        return self.head(x)


def einsum_net() -> tuple[nn.Module, torch.Tensor]:
    """torch.einsum channel mixing with a raw Parameter, einsum attention pooling."""
    torch.manual_seed(0)
    return finalize(EinsumNet()), torch.randn(1, 3, 16, 16)
