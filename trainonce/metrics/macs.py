"""Multiply-accumulate counts read off the captured IR.

Why the IR and not module hooks: every op the model actually runs appears as one ATen node with
static shapes, so functional calls (``F.conv2d``, ``x @ w``, ``torch.einsum``, SDPA) are counted as
well as ``nn.Module`` layers, shared modules are counted once per call, and a pruned model is
measured exactly the way the full one is.

Conventions (the thop / ptflops ones for the arithmetic-bound layers, so numbers compare with
the MAC columns of pruning papers):

* one MAC = one multiply plus one add; the batch dimension of the example input is included;
* biases are free (they fold into the accumulator's initial value);
* convolution: ``out.numel() * (C_in / groups) * prod(kernel)``; a transposed convolution is the
  adjoint, ``in.numel() * (C_out / groups) * prod(kernel)``;
* ``linear``: ``out.numel() * in_features``; ``mm``/``bmm``/``addmm``/``matmul``/...:
  ``out.numel() * contracted size``; ``einsum``: the product of every index size of the equation
  (``out.numel() * contracted`` for two operands);
* scaled-dot-product attention: ``B*H*L*S*E`` for ``q @ k^T`` plus ``B*H*L*S*Ev`` for
  ``attn @ v`` (softmax and scaling are elementwise, see below); ``H`` is the number of *query*
  heads, so grouped-query attention costs the same as the equivalent multi-head attention;
* recurrent layers (LSTM/GRU/RNN): every weight matrix is applied once per time step and batch
  element, ``T * B * sum(weight.numel())`` (the gate nonlinearities are elementwise);
* normalisation layers (batch/layer/group/instance/RMS norm): ``out.numel()``, one MAC per element
  (the fused ``(x - mean) * (gamma / std)`` scale-and-shift);
* everything else (activations, residual adds, pooling, softmax, reshapes, embeddings lookups) is
  0: those ops are memory-bound, their cost is the bytes they move rather than arithmetic, and
  the MAC column of every reference table omits them.

Default total: convolutions, linear/matmul-type ops, attention and recurrent layers, *without*
normalisation layers. That is the convention that reproduces the reference figures exactly at
1x3x32x32: CIFAR ResNet-18 555.42 M, CIFAR ResNet-50 1297.83 M, CIFAR VGG-16-BN 313.73 M. Adding
the BatchNorm scale gives 556.04 M / 1301.26 M / 314.00 M, matching none of them. Norm MACs are
still reported under ``by_op["norm"]``, so the other convention is one flag away
(``count_macs(graph, include_norms=True)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trainonce.graph.ir import Graph, Node, Value

CostFn = Callable[[Node], int]

CONV, LINEAR, MATMUL, ATTENTION, RNN, NORM = "conv", "linear", "matmul", "attention", "rnn", "norm"
DEFAULT_EXCLUDED: frozenset[str] = frozenset({NORM})


@dataclass
class MacReport:
    """MACs of one forward pass on the captured example inputs.

    ``total`` and ``by_module`` count the families of the chosen convention (by default every
    family except ``"norm"``); ``by_op`` lists every family with a nonzero cost, counted or not,
    and ``excluded`` names the families that are in ``by_op`` but not in ``total``.
    ``by_module`` keys are module paths as in the IR (``""`` is the root module).
    """

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()

    def __str__(self) -> str:
        ops = ", ".join(f"{k}={v / 1e6:.2f}M" for k, v in sorted(self.by_op.items()))
        return f"MacReport(total={self.total / 1e6:.2f}M; {ops})"


# --------------------------------------------------------------------------- helpers
def _numel(value: Value | None) -> int:
    return math.prod(value.shape) if isinstance(value, Value) else 0


def _first_value(node: Node, *names: str) -> Value | None:
    """The first of ``names`` that is a tensor argument of ``node`` (overloads name them differently)."""
    for name in names:
        value = node.args.get(name)
        if isinstance(value, Value):
            return value
    return None


def _out(node: Node) -> Value | None:
    return node.outputs[0] if node.outputs else None


# --------------------------------------------------------------------------- cost functions
def _conv(node: Node, transposed: bool = False) -> int:
    """Direct conv: each output element reads C_in/G * prod(k) inputs. Transposed: each *input*
    element is scattered into C_out/G * prod(k) outputs (the adjoint of the direct conv)."""
    weight = _first_value(node, "weight")
    if weight is None or weight.ndim < 2:
        return 0
    per_element = weight.shape[1] * math.prod(weight.shape[2:])
    source = _first_value(node, "input") if transposed else _out(node)
    return _numel(source) * per_element


def _conv_transposed(node: Node) -> int:
    return _conv(node, transposed=True)


def _convolution(node: Node) -> int:
    """``aten.convolution`` / ``_convolution`` carry the direction as an argument."""
    return _conv(node, transposed=bool(node.args.get("transposed", False)))


def _contract_last(first: str) -> CostFn:
    """out.numel() * (size of the last dim of the argument ``first``): mm, bmm, matmul, linear..."""

    def cost(node: Node) -> int:
        operand = _first_value(node, first)
        if operand is None or operand.ndim == 0:
            return 0
        return _numel(_out(node)) * operand.shape[-1]

    cost.__doc__ = f"out.numel() * {first}.shape[-1]"
    return cost


def _addbmm(node: Node) -> int:
    """addbmm sums the batch of products into one matrix: b*n*m*k, not out.numel()*k."""
    batch1, batch2 = _first_value(node, "batch1"), _first_value(node, "batch2")
    return _numel(batch1) * batch2.shape[-1] if batch1 is not None and batch2 is not None else 0


def _einsum(node: Node) -> int:
    """Product of every index size (the naive loop nest), times (operands - 1) multiplies per
    point. For two operands this is out.numel() * contracted size; one operand (transpose, trace,
    sum) is pure data movement and costs 0."""
    equation = node.args.get("equation")
    operands = [t for t in node.args.get("tensors") or [] if isinstance(t, Value)]
    if not isinstance(equation, str) or len(operands) < 2:
        return 0
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    if len(inputs) != len(operands):
        return 0
    sizes: dict[str, int] = {}
    ellipsis: list[int] = []  # broadcast shape of every "..." (right-aligned)
    for subscripts, operand in zip(inputs, operands, strict=True):
        letters = subscripts.replace("...", "")
        n_ellipsis = operand.ndim - len(letters)
        dims = list(operand.shape)
        if "..." in subscripts:
            head, tail = subscripts.split("...")
            ell = dims[len(head) : len(head) + n_ellipsis]
            dims = dims[: len(head)] + dims[len(head) + n_ellipsis :]
            letters = head + tail
            width = max(len(ellipsis), len(ell))
            ellipsis = [1] * (width - len(ellipsis)) + ellipsis
            ell = [1] * (width - len(ell)) + ell
            ellipsis = [max(a, b) for a, b in zip(ellipsis, ell, strict=True)]
        for letter, size in zip(letters, dims, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), size)  # size-1 dims broadcast
    return math.prod(sizes.values()) * math.prod(ellipsis) * (len(operands) - 1)


def _sdpa(node: Node) -> int:
    """q @ k^T (B*H*L*S*E) plus attn @ v (B*H*L*S*Ev); B*H from the output, i.e. query heads."""
    query, key, value = (_first_value(node, n) for n in ("query", "key", "value"))
    output = _out(node)
    if query is None or key is None or value is None or output is None or query.ndim < 2:
        return 0
    batch_heads = math.prod(output.shape[:-2])
    length, embed, source, embed_v = query.shape[-2], query.shape[-1], key.shape[-2], value.shape[-1]
    return batch_heads * length * source * (embed + embed_v)


def _rnn(node: Node) -> int:
    """Each weight matrix (input-hidden, hidden-hidden, projection, every layer and direction)
    does one matrix-vector product per time step and batch element."""
    sequence = _first_value(node, "input", "data")
    params = node.args.get("params") or []
    if sequence is None or sequence.ndim < 1:
        return 0
    steps = math.prod(sequence.shape[:-1])  # T * B (or the packed length)
    return steps * sum(_numel(w) for w in params if isinstance(w, Value) and w.ndim == 2)


def _elementwise_output(node: Node) -> int:
    """One MAC per output element (the fused normalise-and-scale of a norm layer)."""
    return _numel(_out(node))


# packet (in-place "_" stripped) -> (family, cost). Anything absent costs 0 (memory-bound).
COSTS: dict[str, tuple[str, CostFn]] = {
    **{p: (CONV, _conv) for p in ("conv1d", "conv2d", "conv3d", "mkldnn_convolution", "cudnn_convolution")},
    **{
        p: (CONV, _conv_transposed)
        for p in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cudnn_convolution_transpose")
    },
    "convolution": (CONV, _convolution),
    "_convolution": (CONV, _convolution),
    "linear": (LINEAR, _contract_last("input")),
    "mm": (MATMUL, _contract_last("self")),
    "bmm": (MATMUL, _contract_last("self")),
    "matmul": (MATMUL, _contract_last("self")),
    "mv": (MATMUL, _contract_last("self")),
    "dot": (MATMUL, _contract_last("self")),
    "vdot": (MATMUL, _contract_last("self")),
    "addmm": (MATMUL, _contract_last("mat1")),
    "_addmm_activation": (MATMUL, _contract_last("mat1")),
    "addmv": (MATMUL, _contract_last("mat")),
    "baddbmm": (MATMUL, _contract_last("batch1")),
    "addbmm": (MATMUL, _addbmm),
    "einsum": (MATMUL, _einsum),
    **{
        p: (ATTENTION, _sdpa)
        for p in (
            "scaled_dot_product_attention",
            "_scaled_dot_product_attention_math",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
        )
    },
    **{p: (RNN, _rnn) for p in ("lstm", "gru", "rnn_tanh", "rnn_relu")},
    **{
        p: (NORM, _elementwise_output)
        for p in (
            "batch_norm",
            "_batch_norm_impl_index",
            "native_batch_norm",
            "_native_batch_norm_legit",
            "_native_batch_norm_legit_no_training",
            "_native_batch_norm_legit_functional",
            "cudnn_batch_norm",
            "miopen_batch_norm",
            "layer_norm",
            "native_layer_norm",
            "group_norm",
            "native_group_norm",
            "instance_norm",
            "rms_norm",
            "_fused_rms_norm",
        )
    },
}


def node_macs(node: Node) -> tuple[str | None, int]:
    """(family, MACs) of one node; (None, 0) for ops that are not arithmetic-bound."""
    packet = node.packet[:-1] if node.packet.endswith("_") and not node.packet.endswith("__") else node.packet
    entry = COSTS.get(packet)
    if entry is None:
        return None, 0
    family, cost = entry
    return family, int(cost(node))


def count_macs(graph: Graph, include_norms: bool = False, exclude: Iterable[str] | None = None) -> MacReport:
    """Count the MACs of ``graph`` (from :func:`trainonce.graph.capture.capture`).

    ``include_norms=False`` (default) reproduces the published conv+linear references (see the
    module docstring); ``exclude`` overrides the excluded families entirely (e.g. ``()`` to count
    everything, ``{"norm", "attention"}`` for a weights-only count).
    """
    excluded = frozenset(exclude) if exclude is not None else (frozenset() if include_norms else DEFAULT_EXCLUDED)
    by_op: dict[str, int] = {}
    by_module: dict[str, int] = {}
    total = 0
    for node in graph.nodes:
        family, macs = node_macs(node)
        if family is None or macs == 0:
            continue
        by_op[family] = by_op.get(family, 0) + macs
        if family in excluded:
            continue
        total += macs
        by_module[node.module] = by_module.get(node.module, 0) + macs
    return MacReport(total, by_op, by_module, tuple(sorted(f for f in excluded if f in by_op)))
