"""Ops that create channels from weights or sum over channels: linear, matmul, conv, attention.

They are written as einsum-like letter maps: a letter shared by operands is one space; a letter
kept in the output carries its space through (a stem's output channels come from its weight's
rows); a letter summed over is a contraction, where the consumer side is recorded and the
exactness of removing a channel is checked (``Propagation.contract_layouts``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from trainonce.graph.ir import Node, Value
from trainonce.groups.atoms import Layout
from trainonce.groups.propagate import ConvRecord, Propagation, rule


def einsum_like(p: Propagation, node: Node, operands: Sequence[tuple[Value, str]], out_letters: str, out: Value) -> None:
    """Apply an einsum letter map; broadcast (size-1) occurrences of a letter are ignored."""
    sizes: dict[str, int] = {}
    for v, letters in operands:
        for d, letter in enumerate(letters):
            sizes[letter] = max(sizes.get(letter, 1), v.shape[d])
    occurrences: dict[str, list[tuple[Value, int]]] = {}
    for v, letters in operands:
        for d, letter in enumerate(letters):
            if v.shape[d] == sizes[letter]:
                occurrences.setdefault(letter, []).append((v, d))
    layouts: list[Layout] = []
    zero: list[bool] = []
    for d, letter in enumerate(out_letters):
        found = occurrences.get(letter, [])
        if not found:
            layouts.append(p.fresh(out.shape[d], f"broadcast dimension at {node.where}"))
            zero.append(False)
            continue
        layout = p.unify_all(node, found)
        for v, k in found:
            p.produce(v, k)
        layouts.append(layout)
        zero.append(any(p.is_zero(v, k) for v, k in found))
    for letter, found in occurrences.items():
        if letter not in out_letters:
            p.contract(node, found)
    p.set(out, layouts, zero)


def add_bias(p: Propagation, node: Node, out: Value, bias: Value | None) -> None:
    """``out + bias`` (bias right-aligned): its channels unify, zero needs the bias zero too."""
    if bias is None:
        return
    offset = out.ndim - bias.ndim
    zero = list(p.zero[out.id])
    for d in range(out.ndim):
        k = d - offset
        if k >= 0 and bias.shape[k] == out.shape[d] and out.shape[d] > 1:
            p.unify(p.dim(out, d), p.dim(bias, k), node)
            p.produce(bias, k)
            zero[d] = zero[d] and p.is_zero(bias, k)
        else:
            zero[d] = False
    p.zero[out.id] = zero


def _batch_letters(n: int) -> str:
    return string.ascii_uppercase[:n]


@rule("linear")
def linear(p: Propagation, node: Node) -> None:
    x, weight, out = node.args["input"], node.args["weight"], node.outputs[0]
    lead = _batch_letters(x.ndim - 1)
    if weight.ndim == 1:
        einsum_like(p, node, [(x, lead + "k"), (weight, "k")], lead, out)
    else:
        einsum_like(p, node, [(x, lead + "k"), (weight, "nk")], lead + "n", out)
    add_bias(p, node, out, node.args.get("bias"))


def _matmul_letters(a: Value, b: Value) -> tuple[str, str, str]:
    """Letters of torch.matmul with its 1-D and broadcast-batch rules."""
    a_core = "k" if a.ndim == 1 else "nk"
    b_core = "k" if b.ndim == 1 else "km"
    batch = max(a.ndim - len(a_core), b.ndim - len(b_core))
    letters = _batch_letters(batch)
    a_letters = letters[batch - (a.ndim - len(a_core)):] + a_core
    b_letters = letters[batch - (b.ndim - len(b_core)):] + b_core
    out = letters + ("n" if a.ndim > 1 else "") + ("m" if b.ndim > 1 else "")
    return a_letters, b_letters, out


@rule("matmul", "mm", "bmm", "dot", "vdot", "mv", "inner")
def matmul(p: Propagation, node: Node) -> None:
    a, b = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else node.inputs[0]
    a_letters, b_letters, out_letters = _matmul_letters(a, b)
    einsum_like(p, node, [(a, a_letters), (b, b_letters)], out_letters, node.outputs[0])


@rule("addmm", "baddbmm", "addmv", "addbmm")
def addmm(p: Propagation, node: Node) -> None:
    bias = node.args["self"]
    if node.packet == "addbmm":
        p.opaque(node, f"batch-summed matmul {node.where}")
        return
    a, b = [v for k, v in node.args.items() if k != "self" and isinstance(v, Value)][:2]
    a_letters, b_letters, out_letters = _matmul_letters(a, b)
    out = node.outputs[0]
    einsum_like(p, node, [(a, a_letters), (b, b_letters)], out_letters, out)
    if node.args.get("beta", 1) != 0:
        add_bias(p, node, out, bias if isinstance(bias, Value) else None)


@rule("einsum")
def einsum(p: Propagation, node: Node) -> None:
    equation = node.args["equation"].replace(" ", "")
    inputs = list(node.args["tensors"])
    if "..." in equation or "->" not in equation:
        p.opaque(node, f"einsum with implicit output or ellipsis {node.where}")
        return
    lhs, out_letters = equation.split("->")
    specs = lhs.split(",")
    if any(len(spec) != v.ndim or len(set(spec)) != len(spec) for spec, v in zip(specs, inputs, strict=True)):
        p.opaque(node, f"einsum with repeated letters {node.where}")
        return
    einsum_like(p, node, list(zip(inputs, specs, strict=True)), out_letters, node.outputs[0])


@rule("embedding")
def embedding(p: Propagation, node: Node) -> None:
    weight, indices, out = node.args["weight"], node.args["indices"], node.outputs[0]
    p.freeze(p.dim(weight, 0), f"rows of {node.where} are looked up by index")
    layouts = [p.dim(indices, d) for d in range(indices.ndim)] + [p.dim(weight, 1)]
    p.produce(weight, 1)
    p.set(out, layouts, [False] * indices.ndim + [p.is_zero(weight, 1)])


@rule("conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "_convolution")
def convolution(p: Propagation, node: Node) -> None:
    """Conv of any dimension, grouped, depthwise or transposed.

    With ``groups = G`` the input channels are ``G x Ci`` and the output ``G x Co`` (row-major),
    the ``G`` digit shared. A depthwise conv (``Ci = 1``) therefore ties its output channels to
    its input channels; a grouped conv with ``Ci > 1`` keeps ``G`` fixed and prunes the same
    width in every group.
    """
    x, weight, out = node.args["input"], node.args["weight"], node.outputs[0]
    transposed = node.packet.startswith("conv_transpose") or bool(node.args.get("transposed", False))
    groups = int(node.args.get("groups") or 1)
    channel = 1 if x.ndim == weight.ndim else 0
    w_in, w_out = (0, 1) if transposed else (1, 0)
    spatial = [p.fresh(s, f"spatial size of {node.where}") for s in out.shape[channel + 1:]]
    for d in range(channel + 1, x.ndim):  # the kernel slides along these: a removed position moves every window
        p.freeze(p.dim(x, d), f"convolved over by {node.where}")
    for d in range(2, weight.ndim):
        p.freeze(p.dim(weight, d), f"kernel window of {node.where}")
    batch = [p.dim(x, 0)] if channel == 1 else []

    def run() -> None:
        x_channels = p.dim(x, channel)
        weight_zero = p.param_of(weight) is not None or p.is_zero(weight, w_out)
        if groups == 1:
            p.contract_layouts(node, [(x, x_channels, p.is_zero(x, channel)), (weight, p.dim(weight, w_in), False)])
            out_channels = p.dim(weight, w_out)
            group_layout = None
            zero = weight_zero
        else:
            ci = x.shape[channel] // groups
            g_x, i_x = p.atoms.split_layout(x_channels, [groups, ci]) if ci > 1 else (x_channels, ())
            if transposed:
                g_w, i_w = p.atoms.split_layout(p.dim(weight, 0), [groups, ci]) if ci > 1 else (p.dim(weight, 0), ())
                p.unify(g_x, g_w, node)
                out_channels = p.atoms.merge_layouts([g_x, p.dim(weight, 1)])
            else:
                co = weight.shape[0] // groups
                g_w, _ = p.atoms.split_layout(p.dim(weight, 0), [groups, co]) if co > 1 else (p.dim(weight, 0), ())
                p.unify(g_x, g_w, node)
                i_w = p.dim(weight, 1)
                out_channels = p.dim(weight, 0)
            if ci > 1:
                p.freeze(g_x, f"the number of groups of grouped convolution {node.where}")
                p.contract_layouts(node, [(x, i_x, p.is_zero(x, channel)), (weight, i_w, False)])
            group_layout = g_x
            zero = weight_zero or p.is_zero(x, channel)
        p.produce(weight, w_out)
        p.set(out, [*batch, out_channels, *spatial], [False] * len(batch) + [zero] + [False] * len(spatial))
        p.convs.append(ConvRecord(weight, groups, group_layout, transposed))
        bias = node.args.get("bias")
        if isinstance(bias, Value):
            p.unify(p.dim(bias, 0), out_channels, node)
            p.produce(bias, 0)
            p.zero[out.id][channel] = zero and p.is_zero(bias, 0)

    p.guarded(node, run)


@rule("scaled_dot_product_attention")
def attention(p: Propagation, node: Node) -> None:
    """softmax(q k^T * scale + mask) v, with grouped-query heads when ``enable_gqa``.

    Heads behave like a batch dim, so whole heads prune exactly (a zeroed head has zero values,
    hence zero output). The head dim of q/k is summed over; the default scale 1/sqrt(E) depends
    on it, so it is frozen then. With GQA the query heads are ``kv_heads x repeat``: each kv
    head is tied to its query heads and the repeat digit is frozen.
    """
    q, k, v, out = node.args["query"], node.args["key"], node.args["value"], node.outputs[0]
    mask = node.args.get("attn_mask")

    def run() -> None:
        q_heads = p.dim(q, -3) if q.ndim >= 3 else None
        if q_heads is not None and q.shape[-3] != k.shape[-3]:
            if not node.args.get("enable_gqa") or q.shape[-3] % k.shape[-3]:
                raise_opaque()
                return
            kv, repeat = p.atoms.split_layout(q_heads, [k.shape[-3], q.shape[-3] // k.shape[-3]])
            p.freeze(repeat, f"query heads sharing a key/value head at {node.where}")
            p.unify(kv, p.dim(k, -3), node)
            p.unify(kv, p.dim(v, -3), node)
        elif q_heads is not None:
            p.unify(q_heads, p.dim(k, -3), node)
            p.unify(q_heads, p.dim(v, -3), node)
        for d in range(q.ndim - 3):
            p.unify(p.dim(q, d), p.dim(k, d), node)
            p.unify(p.dim(q, d), p.dim(v, d), node)
        p.unify(p.dim(k, -2), p.dim(v, -2), node)
        p.freeze(p.dim(k, -2), f"keys are normalised together by the softmax of {node.where}")
        p.contract(node, [(q, -1), (k, -1)])
        if node.args.get("scale") is None:
            p.freeze(p.dim(q, -1), f"the default softmax scale of {node.where} depends on the head size")
        if isinstance(mask, Value):
            for d in range(1, mask.ndim + 1):
                size = mask.shape[-d]
                if size > 1:
                    target = p.dim(k, -2) if d == 1 else (p.dim(q, -2) if d == 2 else p.dim(q, -d))
                    p.unify(p.dim(mask, -d), target, node)
        layouts = [p.dim(q, d) for d in range(q.ndim - 1)] + [p.dim(v, -1)]
        zero = [False] * (q.ndim - 1) + [p.is_zero(v, -1)]
        if q.ndim >= 3:
            zero[-3] = p.is_zero(v, -3)
        p.set(out, layouts, zero)

    def raise_opaque() -> None:
        p.opaque(node, f"attention with mismatched head counts {node.where}")

    p.guarded(node, run)
