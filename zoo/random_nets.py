"""Random networks for property-based tests: a broad op vocabulary composed at random.

A network is described by a ``NetSpec``: an input, a list of layer specs and a head, all plain
tuples and dicts, so a failing case prints as something one can paste back into ``build``.
``networks()`` is a hypothesis strategy that draws specs; shapes are tracked while drawing by
building each layer and running it on a tensor of the current shape, so every drawn network
runs, and no shape logic is written twice.

The vocabulary is chosen to reach every rule trainonce has and the places where rules are easy
to get wrong: convolutions of every kind (1-D/2-D/3-D, grouped, depthwise, transposed, strided,
dilated, reflect-padded) applied along *any* dimension, every normalisation, activations that do
and do not keep zero, residual add/sub/mul and in-place adds, parallel branches summed or
concatenated, split/chunk/slice/narrow at literal offsets, reshape/permute/flatten, attention
heads with SDPA (fused qkv, grouped-query, explicit scale), ``nn.MultiheadAttention`` fed by a
shared projection, pooling and reductions along any dimension, weight sharing, embeddings,
channel/pixel shuffles, padding, roll/flip/cumsum, upsampling, layer-scale parameters and
in-place activations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from zoo.init import randomize_norms

LayerSpec = tuple[str, dict[str, Any]]
BATCH = 2


@dataclass(frozen=True)
class NetSpec:
    """A random network: its input, its layers and its head (plain data, printable)."""

    seed: int
    input: tuple[str, tuple[int, ...], int]  # ("float" | "tokens", shape with batch, vocabulary size)
    layers: tuple[LayerSpec, ...]
    head: str

    def __repr__(self) -> str:
        return f"NetSpec(seed={self.seed}, input={self.input!r}, layers={self.layers!r}, head={self.head!r})"


# -- elementwise and shape functions: name -> f(h, **kwargs) ---------------------------------

FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": F.relu, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "leaky_relu": F.leaky_relu, "elu": F.elu, "hardswish": F.hardswish,
    "mish": F.mish, "softplus": F.softplus, "exp_neg": lambda h: torch.exp(-h.abs()),
    "relu_": torch.relu_, "sigmoid_": torch.sigmoid_, "mul_": lambda h, c: h.mul_(c), "add_": lambda h, c: h.add_(c),
    "scale": lambda h, c: h * c, "shift": lambda h, c: h + c, "div": lambda h, c: h / c,
    "square": lambda h: h * h, "abs": torch.abs, "clamp": lambda h, lo, hi: h.clamp(lo, hi),
    "amax": lambda h, dim, keepdim: h.amax(dim, keepdim=keepdim),
    "mean": lambda h, dim, keepdim: h.mean(dim, keepdim=keepdim),
    "sum": lambda h, dim, keepdim: h.sum(dim, keepdim=keepdim),
    "max": lambda h, dim, keepdim: h.max(dim, keepdim=keepdim).values,
    "std": lambda h, dim, keepdim: h.std(dim, keepdim=keepdim),
    "logsumexp": lambda h, dim, keepdim: torch.logsumexp(h, dim, keepdim=keepdim),
    "softmax": lambda h, dim: torch.softmax(h, dim),
    "adaptive_max_pool1d": lambda h, size: F.adaptive_max_pool1d(h, size),
    "adaptive_avg_pool1d": lambda h, size: F.adaptive_avg_pool1d(h, size),
    "max_pool1d": lambda h, k: F.max_pool1d(h, k),
    "avg_pool1d": lambda h, k: F.avg_pool1d(h, k),
    "max_pool2d": lambda h, k: F.max_pool2d(h, k),
    "avg_pool2d": lambda h, k: F.avg_pool2d(h, k),
    "adaptive_avg_pool2d": lambda h, size: F.adaptive_avg_pool2d(h, size),
    "slice": lambda h, dim, start, stop: h[(slice(None),) * dim + (slice(start, stop),)],
    "strided": lambda h, dim: h[(slice(None),) * dim + (slice(None, None, 2),)],
    "narrow": lambda h, dim, start, length: h.narrow(dim, start, length),
    "select": lambda h, dim, index: h.select(dim, index),
    "flatten": lambda h: h.flatten(1),
    "transpose": lambda h, a, b: h.transpose(a, b),
    "unflatten": lambda h, parts: h.unflatten(-1, (parts, -1)),
    "merge_last": lambda h: h.flatten(-2),
    "pad": lambda h, left, right, value: F.pad(h, (left, right), value=value),
    "reflect_pad": lambda h, amount: F.pad(h, (amount, amount), mode="reflect"),
    "roll": lambda h, dim, shift: torch.roll(h, shift, dim),
    "flip": lambda h, dim: torch.flip(h, (dim,)),
    "cumsum": lambda h, dim: torch.cumsum(h, dim),
    "upsample": lambda h, mode: F.interpolate(h, scale_factor=2, mode=mode),
    "unsqueeze_conv": lambda h: h.unsqueeze(1),
    "squeeze_channel": lambda h: h.squeeze(1),
}


class Fn(nn.Module):
    """A parameter-free function from ``FUNCTIONS`` with fixed keyword arguments."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__()
        self.name, self.kwargs = name, kwargs

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return FUNCTIONS[self.name](h, **self.kwargs)


class LayerScale(nn.Module):
    """A learnable per-position scale along one dimension (ConvNeXt/CaiT layer scale)."""

    def __init__(self, size: int, dim: int, ndim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(size) + 0.5)
        self.shape = [size if d == dim else 1 for d in range(ndim)]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.gamma.view(self.shape)


class Residual(nn.Module):
    """``h (op) body(h)``: add, sub, mul, an in-place add into the body's output, or a scaled skip."""

    def __init__(self, body: nn.Module, op: str) -> None:
        super().__init__()
        self.body, self.op = body, op

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.body(h)
        if self.op == "add":
            return h + out
        if self.op == "sub":
            return h - out
        if self.op == "rsub":
            return out - h
        if self.op == "mul":
            return h * out
        if self.op == "add_":
            return out.add_(h)
        return 0.5 * h + out  # "scaled"


class Branches(nn.Module):
    """Parallel bodies on the same input, summed or concatenated along ``dim`` (super-networks)."""

    def __init__(self, bodies: list[nn.Module], join: str, dim: int) -> None:
        super().__init__()
        self.bodies, self.join, self.dim = nn.ModuleList(bodies), join, dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        outs = [body(h) for body in self.bodies]
        if self.join == "cat":
            return torch.cat(outs, self.dim)
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total


class Split(nn.Module):
    """Split along ``dim`` (literal sizes or chunks), then recombine the pieces."""

    def __init__(self, dim: int, sizes: list[int] | None, chunks: int, combine: str, bodies: list[nn.Module]) -> None:
        super().__init__()
        self.dim, self.sizes, self.chunks, self.combine = dim, sizes, chunks, combine
        self.bodies = nn.ModuleList(bodies)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        parts = list(h.split(self.sizes, self.dim) if self.sizes else h.chunk(self.chunks, self.dim))
        if self.bodies:
            parts = [body(part) for body, part in zip(self.bodies, parts, strict=False)] + parts[len(self.bodies):]
        if self.combine == "glu":
            return parts[0] * torch.sigmoid(parts[1])
        if self.combine == "mul":
            return parts[0] * parts[1]
        if self.combine == "add":
            return parts[0] + parts[1]
        if self.combine == "first":
            return parts[0]
        if self.combine == "last":
            return parts[-1]
        return torch.cat(parts[::-1], self.dim)  # "swap"


class Heads(nn.Module):
    """Multi-head attention written out: q/k/v projections (separate or fused), heads, SDPA."""

    def __init__(self, width: int, heads: int, head_dim: int, kv_heads: int, fused: bool, explicit_scale: bool,
                 causal: bool, out: int, bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim, self.kv_heads = heads, head_dim, kv_heads
        self.fused, self.causal = fused, causal
        self.scale = head_dim ** -0.5 if explicit_scale else None
        q, kv = heads * head_dim, kv_heads * head_dim
        if fused:
            self.qkv = nn.Linear(width, q + 2 * kv, bias=bias)
        else:
            self.q, self.k, self.v = nn.Linear(width, q, bias=bias), nn.Linear(width, kv, bias=bias), nn.Linear(width, kv, bias=bias)
        self.proj = nn.Linear(q, out, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        q_width, kv_width = self.heads * self.head_dim, self.kv_heads * self.head_dim
        if self.fused:
            q, k, v = self.qkv(h).split([q_width, kv_width, kv_width], -1)
        else:
            q, k, v = self.q(h), self.k(h), self.v(h)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        gqa = self.kv_heads != self.heads
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale, enable_gqa=gqa)
        return self.proj(out.transpose(1, 2).reshape(b, t, q_width))


class TorchMHA(nn.Module):
    """``nn.MultiheadAttention`` (batch first), optionally fed by one shared projection."""

    def __init__(self, width: int, heads: int, pre: int | None, bias: bool) -> None:
        super().__init__()
        embed = pre or width
        self.pre = nn.Linear(width, embed) if pre else None
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.pre(h) if self.pre is not None else h
        return self.attention(x, x, x, need_weights=False)[0]


class Twice(nn.Module):
    """The same module applied twice (a weight used on both sides of its own space)."""

    def __init__(self, module: nn.Module, act: str) -> None:
        super().__init__()
        self.module, self.act = module, act

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.module(FUNCTIONS[self.act](self.module(h)))


class RandomNet(nn.Module):
    """The network a ``NetSpec`` describes."""

    def __init__(self, embedding: nn.Module | None, layers: list[nn.Module], head: nn.Module | None) -> None:
        super().__init__()
        self.embedding = embedding
        self.layers = nn.Sequential(*layers)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x) if self.embedding is not None else x
        h = self.layers(h)
        return self.head(h) if self.head is not None else h


# -- building a layer from its spec ------------------------------------------------------

CONVS = {3: (nn.Conv1d, nn.ConvTranspose1d), 4: (nn.Conv2d, nn.ConvTranspose2d), 5: (nn.Conv3d, nn.ConvTranspose3d)}
NORMS = {"batch": {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d},
         "instance": {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}}


@dataclass
class Builder:
    """Builds layers in spec order; keeps the weighted layers so later specs can share them."""

    shared: dict[int, nn.Module] = field(default_factory=dict)

    def layer(self, spec: LayerSpec) -> nn.Module:
        kind, p = spec
        if kind == "fn":
            return Fn(p["name"], **p.get("kwargs", {}))
        if kind == "linear":
            return self._keep(p["key"], nn.Linear(p["in"], p["out"], bias=p["bias"]))
        if kind == "conv":
            conv_cls = CONVS[p["ndim"]][1 if p["transposed"] else 0]
            options = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"], bias=p["bias"])
            if not p["transposed"]:
                options["padding_mode"] = p["padding_mode"]
            return self._keep(p["key"], conv_cls(p["in"], p["out"], p["kernel"], **options))
        if kind == "norm":
            return self._norm(p)
        if kind == "prelu":
            return nn.PReLU(p["size"])
        if kind == "layer_scale":
            return LayerScale(p["size"], p["dim"], p["ndim"])
        if kind == "dropout":
            return nn.Dropout(0.3)
        if kind == "shared":
            return self.shared[p["ref"]]
        if kind == "twice":
            return Twice(nn.Linear(p["size"], p["size"]), p["act"])
        if kind == "residual":
            return Residual(self.sequence(p["body"]), p["op"])
        if kind == "branches":
            return Branches([self.sequence(body) for body in p["bodies"]], p["join"], p["dim"])
        if kind == "split":
            return Split(p["dim"], p["sizes"], p["chunks"], p["combine"], [self.sequence(b) for b in p["bodies"]])
        if kind == "heads":
            return Heads(**p)
        if kind == "mha":
            return TorchMHA(**p)
        if kind == "channel_shuffle":
            return nn.ChannelShuffle(p["groups"])
        if kind == "pixel_shuffle":
            return nn.PixelShuffle(2)
        if kind == "pixel_unshuffle":
            return nn.PixelUnshuffle(2)
        raise ValueError(f"unknown layer kind {kind!r}")

    def sequence(self, specs: list[LayerSpec] | tuple[LayerSpec, ...]) -> nn.Sequential:
        return nn.Sequential(*(self.layer(s) for s in specs))

    def _keep(self, key: int, module: nn.Module) -> nn.Module:
        self.shared[key] = module
        return module

    @staticmethod
    def _norm(p: dict[str, Any]) -> nn.Module:
        kind, size = p["kind"], p["size"]
        if kind == "layer":
            return nn.LayerNorm(p["shape"], elementwise_affine=p["affine"], bias=p["bias"])
        if kind == "rms":
            return nn.RMSNorm(p["shape"], elementwise_affine=p["affine"])
        if kind == "group":
            return nn.GroupNorm(p["groups"], size, affine=p["affine"])
        if kind == "instance":
            return NORMS["instance"][p["ndim"]](size, affine=p["affine"])
        return NORMS["batch"][p["ndim"]](size, affine=p["affine"])


def build(spec: NetSpec) -> tuple[RandomNet, torch.Tensor]:
    """The model (eval mode, non-trivial norm state) and an example input for ``spec``."""
    torch.manual_seed(spec.seed)
    builder = Builder()
    kind, _, vocabulary = spec.input
    embedding = nn.Embedding(vocabulary, shape_after_embedding(spec)) if kind == "tokens" else None
    layers = [builder.layer(layer) for layer in spec.layers]
    model = RandomNet(embedding, layers, None)
    example = example_input(spec)
    with torch.no_grad():
        features = model(example)
    model.head = make_head(spec.head, features)
    randomize_norms(model, seed=spec.seed)
    with torch.no_grad():  # biases and 1-D parameters away from their 0/1 defaults
        generator = torch.Generator().manual_seed(spec.seed + 1)
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
    return model.eval(), example


def shape_after_embedding(spec: NetSpec) -> int:
    return int(spec.input[1][-1])


def example_input(spec: NetSpec, batch: int = BATCH, seed: int = 0) -> torch.Tensor:
    """An input of the spec's shape (with ``batch`` rows); tokens are ids below the vocabulary."""
    kind, shape, vocabulary = spec.input
    generator = torch.Generator().manual_seed(spec.seed * 7919 + seed)
    if kind == "tokens":
        return torch.randint(0, vocabulary, (batch, *shape[1:-1]), generator=generator)
    return torch.randn((batch, *shape[1:]), generator=generator)


def make_head(head: str, features: torch.Tensor) -> nn.Module | None:
    if head == "none":
        return None
    if head == "flatten_linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(features[0].numel(), 5))
    if head == "mean_linear" and features.ndim > 2:
        return nn.Sequential(Fn("mean", dim=tuple(range(2, features.ndim)), keepdim=False), nn.Linear(features.shape[1], 5))
    return nn.Linear(features.shape[-1], 5)


# -- the strategy ------------------------------------------------------------------------

START_SHAPES = {
    "image": lambda d: (BATCH, d(2, 6), d(4, 8), d(4, 8)),
    "signal": lambda d: (BATCH, d(2, 6), d(5, 10)),
    "sequence": lambda d: (BATCH, d(3, 6), d(4, 12)),
    "vector": lambda d: (BATCH, d(4, 12)),
    "volume": lambda d: (BATCH, d(2, 4), d(3, 5), d(3, 5), d(3, 5)),
    "tokens": lambda d: (BATCH, d(3, 6), d(4, 12)),  # (batch, length, embedding width)
}
ACTIVATIONS = ("relu", "relu6", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu", "hardswish", "mish", "softplus")
REDUCTIONS = ("amax", "mean", "sum", "max", "std", "logsumexp")


class _Stand(dict):  # type: ignore[type-arg]
    """Shared modules while drawing: a fresh module of the shared layer's spec (same shapes)."""

    def __init__(self, specs: dict[int, LayerSpec]) -> None:
        super().__init__()
        self.specs = specs

    def __missing__(self, key: int) -> nn.Module:
        return Builder().layer(self.specs[key])


def _output_shape(spec: LayerSpec, shape: tuple[int, ...], specs: dict[int, LayerSpec]) -> tuple[int, ...] | None:
    """The shape ``spec`` produces from ``shape``, or None if it does not run on it."""
    try:
        with torch.no_grad():
            out = Builder(shared=_Stand(specs)).layer(spec).eval()(torch.randn(shape))
    except Exception:
        return None
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.numel() == 0 or out.numel() > 20_000 or out.shape[0] != shape[0]:
        return None
    if not bool(torch.isfinite(out).all()):  # e.g. the std of one value: a broken model, not a test of pruning
        return None
    return tuple(out.shape)


class Drawer:
    """Draws layer specs valid for the current shape (hypothesis ``draw`` underneath)."""

    def __init__(self, draw: Callable[[Any], Any], erase_bias: bool) -> None:
        self.draw = draw
        self.erase_bias = erase_bias  # more parallel branches and residuals (super-networks)
        # weighted layers another layer may reuse: (key, input shape, output shape); a layer's own
        # weighted layers are pending until the top-level layer holding them is accepted
        self.shareable: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
        self.pending: list[tuple[int, tuple[int, ...], tuple[int, ...] | None]] = []
        self.keys = 0
        self.specs: dict[int, LayerSpec] = {}  # weighted layer specs by key, for shared layers while drawing

    def key(self) -> int:
        self.keys += 1
        return self.keys

    def int(self, low: int, high: int) -> int:
        return int(self.draw(st.integers(low, high)))

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def flag(self) -> bool:
        return bool(self.draw(st.booleans()))

    def dim(self, shape: tuple[int, ...]) -> int:
        return self.int(1, len(shape) - 1)

    # -- one layer ------------------------------------------------------------------------
    def layer(self, shape: tuple[int, ...], depth: int) -> tuple[LayerSpec, tuple[int, ...]]:
        kinds = ["linear", "act", "norm", "conv", "elementwise", "residual", "branches", "split", "slice", "reshape",
                 "reduce", "pool", "position", "inplace", "layer_scale", "shared", "twice", "attention", "shuffle", "dropout"]
        if self.erase_bias:
            kinds += ["residual", "branches", "branches", "residual"]
        if depth >= 2:
            kinds = [k for k in kinds if k not in ("residual", "branches", "split")]
        for _ in range(12):
            mark = len(self.pending)
            kind = self.pick(kinds)
            spec = getattr(self, f"draw_{kind}")(shape, depth)
            out = None if spec is None else _output_shape(spec, shape, self.specs)
            if spec is None or out is None:
                del self.pending[mark:]
                continue
            if spec[0] in ("linear", "conv"):
                self.pending.append((spec[1]["key"], shape, out))
                self.specs[spec[1]["key"]] = spec
            if depth == 0:
                self.shareable.extend((k, before, after) for k, before, after in self.pending if after is not None)
                self.pending.clear()
            return spec, out
        return ("fn", {"name": "relu"}), shape

    def stem(self, shape: tuple[int, ...]) -> tuple[LayerSpec, tuple[int, ...]]:
        """A first layer with weights, so that the network has a space of its own to prune."""
        for _ in range(12):
            mark = len(self.pending)
            spec = getattr(self, f"draw_{self.pick(['linear', 'conv', 'conv', 'attention'])}")(shape, 0)
            out = None if spec is None else _output_shape(spec, shape, self.specs)
            if spec is not None and out is not None:
                if spec[0] in ("linear", "conv"):
                    self.shareable.append((spec[1]["key"], shape, out))
                    self.specs[spec[1]["key"]] = spec
                self.pending.clear()
                return spec, out
            del self.pending[mark:]
        spec = self.draw_linear(shape, 0)
        out = _output_shape(spec, shape, self.specs)
        assert out is not None
        self.shareable.append((spec[1]["key"], shape, out))
        self.specs[spec[1]["key"]] = spec
        return spec, out

    def sequence(self, shape: tuple[int, ...], depth: int, length: int) -> tuple[list[LayerSpec], tuple[int, ...]]:
        specs = []
        for _ in range(length):
            spec, shape = self.layer(shape, depth)
            specs.append(spec)
        return specs, shape

    def back_to(self, specs: list[LayerSpec], shape: tuple[int, ...], target: tuple[int, ...]) -> list[LayerSpec] | None:
        """Append a projection that returns ``shape`` to ``target``, if one exists."""
        if shape == target:
            return specs
        if len(shape) == len(target) and shape[:-1] == target[:-1]:
            return [*specs, ("linear", {"in": shape[-1], "out": target[-1], "bias": self.flag(), "key": self.key()})]
        if len(shape) == len(target) and len(shape) in CONVS and shape[0] == target[0] and shape[2:] == target[2:]:
            return [*specs, ("conv", _conv(self.key(), shape[1], target[1], 1, 1, 0, 1, 1, True, False, "zeros", len(shape)))]
        return None

    # -- layer kinds ----------------------------------------------------------------------
    def draw_linear(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        return ("linear", {"in": shape[-1], "out": self.int(2, 12), "bias": self.flag(), "key": self.key()})

    def draw_act(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        if self.int(0, 5) == 0:
            return ("prelu", {"size": self.pick([1, shape[1]])})
        return ("fn", {"name": self.pick(ACTIVATIONS)})

    def draw_norm(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        kind = self.pick(["batch", "layer", "rms", "group", "instance"])
        ndim, channels = len(shape), shape[1]
        affine = self.draw(st.sampled_from([True, True, False]))
        if kind in ("layer", "rms"):
            last = shape[-2:] if ndim > 2 and self.int(0, 3) == 0 else shape[-1:]
            return ("norm", {"kind": kind, "size": channels, "shape": list(last), "affine": affine, "bias": self.flag()})
        if kind == "group":
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            return ("norm", {"kind": kind, "size": channels, "groups": self.pick(divisors), "affine": affine})
        if kind == "instance" and ndim < 3:
            return None
        return ("norm", {"kind": kind, "size": channels, "ndim": ndim, "affine": affine})

    def draw_conv(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        ndim = len(shape)
        if ndim == 2:  # a 1-channel conv sliding along the features: unsqueeze, conv1d, back
            return None
        if ndim not in CONVS:
            return None
        channels = shape[1]
        style = self.pick(["plain", "plain", "depthwise", "grouped"])
        out = self.int(2, 12)
        groups = 1
        if style == "depthwise":
            groups, out = channels, channels * self.pick([1, 2])
        elif style == "grouped":
            common = [g for g in range(2, channels + 1) if channels % g == 0]
            if not common:
                return None
            groups = self.pick(common)
            out = groups * self.int(1, 3)
        kernel = self.pick([1, 2, 3])
        transposed = self.int(0, 6) == 0
        padding_mode = "reflect" if not transposed and kernel == 3 and self.int(0, 4) == 0 else "zeros"
        padding = self.pick([0, kernel // 2])
        return ("conv", _conv(self.key(), channels, out, kernel, self.pick([1, 1, 2]), padding, self.pick([1, 1, 2]), groups,
                              self.flag(), transposed, padding_mode, ndim))

    def draw_elementwise(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        name = self.pick(["scale", "shift", "div", "square", "abs", "clamp", "exp_neg"])
        if name in ("scale", "shift", "div"):
            return ("fn", {"name": name, "kwargs": {"c": self.pick([2.0, -0.5, 1.0, 3.0])}})
        if name == "clamp":
            return ("fn", {"name": name, "kwargs": {"lo": self.pick([-1.0, 0.0, 0.5]), "hi": 2.0}})
        return ("fn", {"name": name})

    def draw_inplace(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        name = self.pick(["relu_", "relu_", "sigmoid_", "mul_", "add_"])
        if name in ("mul_", "add_"):
            return ("fn", {"name": name, "kwargs": {"c": self.pick([2.0, 0.5, 1.0])}})
        return ("fn", {"name": name})

    def draw_residual(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        body, out = self.sequence(shape, depth + 1, self.int(1, 3))
        body = self.back_to(body, out, shape)
        if body is None:
            return None
        return ("residual", {"body": body, "op": self.pick(["add", "add", "sub", "rsub", "mul", "add_", "scaled"])})

    def draw_branches(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        join = self.pick(["sum", "cat"])
        bodies = []
        dim = self.dim(shape)
        for _ in range(self.int(2, 3)):
            body, out = self.sequence(shape, depth + 1, self.int(1, 2))
            if join == "sum" or len(out) != len(shape) or any(out[d] != shape[d] for d in range(len(shape)) if d != dim):
                body = self.back_to(body, out, shape)
            if body is None:
                return None
            bodies.append(body)
        return ("branches", {"bodies": bodies, "join": join, "dim": dim})

    def draw_split(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        dim = self.dim(shape)
        size = shape[dim]
        if size < 2:
            return None
        combine = self.pick(["glu", "mul", "add", "first", "last", "swap"])
        if combine in ("glu", "mul", "add") or self.flag():
            if size % 2:
                return None
            sizes, chunks = None, 2
        else:
            first = self.int(1, size - 1)
            sizes, chunks = [first, size - first], 2
        bodies = []
        if combine in ("swap", "first") and self.flag():
            piece = list(shape)
            piece[dim] = sizes[0] if sizes else size // 2
            body, out = self.sequence(tuple(piece), depth + 1, 1)
            body = self.back_to(body, out, tuple(piece)) if combine == "swap" else body
            if body is None:
                return None
            bodies.append(body)
        return ("split", {"dim": dim, "sizes": sizes, "chunks": chunks, "combine": combine, "bodies": bodies})

    def draw_slice(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        dim = self.dim(shape)
        size = shape[dim]
        if size < 2:
            return None
        style = self.pick(["slice", "slice", "narrow", "strided", "select"])
        start = self.int(0, size - 1)
        if style == "slice":
            stop = self.pick([None, self.int(start + 1, size)])
            return ("fn", {"name": "slice", "kwargs": {"dim": dim, "start": start, "stop": stop}})
        if style == "narrow":
            return ("fn", {"name": "narrow", "kwargs": {"dim": dim, "start": start, "length": self.int(1, size - start)}})
        if style == "select" and len(shape) > 2:
            return ("fn", {"name": "select", "kwargs": {"dim": dim, "index": start}})
        return ("fn", {"name": "strided", "kwargs": {"dim": dim}})

    def draw_reshape(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        style = self.pick(["flatten", "transpose", "transpose", "unflatten", "merge_last", "unsqueeze_conv"])
        if style == "transpose":
            if len(shape) < 3:
                return None
            a, b = self.dim(shape), self.dim(shape)
            return None if a == b else ("fn", {"name": "transpose", "kwargs": {"a": a, "b": b}})
        if style == "unflatten":
            divisors = [k for k in range(2, shape[-1]) if shape[-1] % k == 0]
            return ("fn", {"name": "unflatten", "kwargs": {"parts": self.pick(divisors)}}) if divisors and len(shape) < 5 else None
        if style == "merge_last":
            return ("fn", {"name": "merge_last"}) if len(shape) > 2 else None
        if style == "unsqueeze_conv":  # (B, F) -> (B, 1, F): a conv then slides along the features
            if len(shape) != 2:
                return None
            conv = _conv(self.key(), 1, self.int(1, 4), self.pick([2, 3]), 1, self.pick([0, 1]), 1, 1, self.flag(), False, "zeros", 3)
            self.pending.append((conv["key"], (shape[0], 1, shape[1]), None))
            return ("branches", {"bodies": [[("fn", {"name": "unsqueeze_conv"}), ("conv", conv), ("fn", {"name": "flatten"})]],
                                 "join": "sum", "dim": 1})
        return ("fn", {"name": "flatten"}) if len(shape) > 2 else None

    def draw_reduce(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        if len(shape) < 3 and self.flag():
            return None
        return ("fn", {"name": self.pick(REDUCTIONS), "kwargs": {"dim": self.dim(shape), "keepdim": self.flag()}})

    def draw_pool(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        ndim = len(shape)
        if ndim in (2, 3):  # pools the last dim; a 2-D (batch, features) input is pooled as unbatched
            name = self.pick(["adaptive_max_pool1d", "adaptive_avg_pool1d", "max_pool1d", "avg_pool1d"])
            if name.startswith("adaptive"):
                return ("fn", {"name": name, "kwargs": {"size": self.pick([1, 2])}})
            return ("fn", {"name": name, "kwargs": {"k": 2}})
        if ndim == 4:
            name = self.pick(["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "upsample"])
            if name == "upsample":
                return ("fn", {"name": name, "kwargs": {"mode": self.pick(["nearest", "bilinear"])}})
            return ("fn", {"name": name, "kwargs": {"size": 1} if name.startswith("adaptive") else {"k": 2}})
        return None

    def draw_position(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        dim = self.dim(shape)
        name = self.pick(["pad", "reflect_pad", "roll", "flip", "cumsum", "softmax"])
        if name == "pad":
            return ("fn", {"name": name, "kwargs": {"left": self.int(0, 2), "right": self.int(1, 2), "value": self.pick([0.0, 1.0])}})
        if name == "reflect_pad":
            return ("fn", {"name": name, "kwargs": {"amount": 1}})
        if name == "roll":
            return ("fn", {"name": name, "kwargs": {"dim": dim, "shift": self.int(1, 2)}})
        return ("fn", {"name": name, "kwargs": {"dim": dim}})

    def draw_layer_scale(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        dim = self.dim(shape)
        return ("layer_scale", {"size": shape[dim], "dim": dim, "ndim": len(shape)})

    def draw_shared(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        fitting = [key for key, before, _ in self.shareable if before[1:] == shape[1:]]
        return ("shared", {"ref": self.pick(fitting)}) if fitting else None

    def draw_twice(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        return ("twice", {"size": shape[-1], "act": self.pick(["relu", "gelu", "tanh"])})

    def draw_attention(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        if len(shape) != 3:
            return None
        width = shape[-1]
        if self.int(0, 2) == 0:
            heads = self.pick([h for h in (1, 2, 3, 4) if width % h == 0])
            pre = self.pick([None, heads * self.int(1, 3)]) if width % heads == 0 else None
            embed = pre or width
            if embed % heads:
                return None
            return ("mha", {"width": width, "heads": heads, "pre": pre, "bias": self.flag()})
        heads, kv_heads = self.pick([(2, 2), (4, 4), (4, 2), (2, 1), (3, 3), (1, 1)])
        return ("heads", {"width": width, "heads": heads, "head_dim": self.int(2, 4), "kv_heads": kv_heads,
                          "fused": self.flag(), "explicit_scale": self.flag(), "causal": self.flag(),
                          "out": self.pick([width, self.int(2, 10)]), "bias": self.flag()})

    def draw_shuffle(self, shape: tuple[int, ...], depth: int) -> LayerSpec | None:
        if len(shape) != 4:
            return None
        channels = shape[1]
        style = self.pick(["channel_shuffle", "pixel_shuffle", "pixel_unshuffle"])
        if style == "channel_shuffle":
            groups = [g for g in range(2, channels) if channels % g == 0]
            return ("channel_shuffle", {"groups": self.pick(groups)}) if groups else None
        if style == "pixel_shuffle":
            return ("pixel_shuffle", {}) if channels % 4 == 0 else None
        return ("pixel_unshuffle", {}) if shape[2] % 2 == 0 and shape[3] % 2 == 0 and channels <= 4 else None

    def draw_dropout(self, shape: tuple[int, ...], depth: int) -> LayerSpec:
        return ("dropout", {})


def _conv(key: int, cin: int, cout: int, kernel: int, stride: int, padding: int, dilation: int, groups: int, bias: bool,
          transposed: bool, padding_mode: str, ndim: int) -> dict[str, Any]:
    if transposed:
        dilation = 1
    return {"key": key, "in": cin, "out": cout, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
            "groups": groups, "bias": bias, "transposed": transposed, "padding_mode": padding_mode, "ndim": ndim}


@st.composite
def networks(draw: Callable[[Any], Any], erase_bias: bool = False) -> NetSpec:
    """A hypothesis strategy of ``NetSpec``s (``erase_bias``: more summed/concatenated branches)."""
    drawer = Drawer(draw, erase_bias)
    start = drawer.pick(START_SHAPES)
    shape = start_shape = START_SHAPES[start](drawer.int)
    vocabulary = drawer.int(5, 20) if start == "tokens" else 0
    stem, shape = drawer.stem(shape)
    layers, _ = drawer.sequence(shape, 0, drawer.int(1, 6))
    head = drawer.pick(["linear", "linear", "flatten_linear", "mean_linear", "none"])
    return NetSpec(drawer.int(0, 10_000), ("tokens" if start == "tokens" else "float", start_shape, vocabulary), (stem, *layers), head)
