"""Is a segment's output exactly zero when all of its parameters are zero?

That is the condition for a segment to be a *generalised* zero-invariant group (GeZIG): once
its variables reach zero it contributes nothing to the joint it feeds, so deleting it is exact.
It does not hold for every chain of ops (``sigmoid(0) = 0.5``, ``x + 1``, an eval-mode BatchNorm
without affine parameters shifts by its running mean), so it is *proven* op by op over the
segment, from tables of what each ATen op does with zero operands. An op that is in no table
proves nothing: the segment is then not erasable, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable

from trainonce.graph.ir import Node, Value

# f(0) = 0 elementwise, or a pure rearrangement/reduction of the values: zero in, zero out.
PRESERVES_ZERO = frozenset({
    "relu", "relu6", "gelu", "silu", "tanh", "hardtanh", "leaky_relu", "elu", "selu", "celu", "mish",
    "hardswish", "hardshrink", "softshrink", "neg", "abs", "sin", "sinh", "asin", "atan", "sign", "square",
    "dropout", "feature_dropout", "alpha_dropout", "native_dropout", "clone", "contiguous", "alias", "detach",
    "lift_fresh_copy", "_to_copy", "to", "type_as",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "_adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d", "upsample_linear1d",
    "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_nearest_exact2d", "pixel_shuffle", "pixel_unshuffle",
    "view", "_unsafe_view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "unsqueeze", "squeeze",
    "expand", "expand_as", "slice", "select", "narrow", "split", "split_with_sizes", "chunk", "unbind",
    "index_select", "repeat", "roll", "flip", "movedim", "unfold", "channel_shuffle",
    "mean", "sum", "amax", "amin", "max", "min", "cumsum", "trace", "diagonal",
})
# zero if any tensor operand is zero (a product).
PRODUCTS = frozenset({"mul", "mm", "bmm", "matmul", "einsum", "linear", "conv1d", "conv2d", "conv3d", "convolution",
                      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "_convolution", "baddbmm", "addmm",
                      "div", "scaled_dot_product_attention"})
# zero if every tensor operand is zero (a sum).
SUMS = frozenset({"add", "sub", "cat", "stack", "where"})
# normalisations: zero when the affine weight and bias are zero (bias may be absent).
NORMS = frozenset({"batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
                   "native_batch_norm", "layer_norm", "native_layer_norm", "group_norm", "native_group_norm",
                   "instance_norm", "rms_norm", "_fused_rms_norm"})
# normalisations that map a zero input to zero whatever their statistics (mean-centred per sample).
CENTRED_NORMS = frozenset({"layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "instance_norm",
                           "rms_norm", "_fused_rms_norm"})
# the bias-like operand of a product op (added, not multiplied): must itself be zero.
BIAS_ARGUMENTS = {"linear": "bias", "conv1d": "bias", "conv2d": "bias", "conv3d": "bias", "convolution": "bias",
                  "_convolution": "bias", "conv_transpose1d": "bias", "conv_transpose2d": "bias",
                  "conv_transpose3d": "bias", "addmm": "self", "baddbmm": "self", "div": "other"}
NORM_AFFINE = ("weight", "bias")


def _tensor_arguments(node: Node) -> list[tuple[str, Value]]:
    found: list[tuple[str, Value]] = []
    for name, arg in node.args.items():
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, Value):
                found.append((name, item))
    return found


def _scalar_is_nonzero(node: Node) -> bool:
    """A Python number operand that would be added (``x + 1``) breaks zero for sums."""
    other = node.args.get("other")
    return isinstance(other, (int, float)) and not isinstance(other, bool) and other != 0


def _node_is_zero(node: Node, zero: set[int]) -> tuple[bool, str]:
    packet = node.packet.rstrip("_") if not node.packet.startswith("_") else node.packet
    operands = _tensor_arguments(node)
    is_zero = {name: value.id in zero for name, value in operands}
    if packet in NORMS:
        weight, bias = node.args.get("weight"), node.args.get("bias")
        affine_zero = isinstance(weight, Value) and weight.id in zero and (bias is None or (isinstance(bias, Value) and bias.id in zero))
        input_value = node.args.get("input")
        input_zero = isinstance(input_value, Value) and input_value.id in zero and packet in CENTRED_NORMS and (
            bias is None or (isinstance(bias, Value) and bias.id in zero))
        return affine_zero or input_zero, f"{node.where} is not zero: its affine weight and bias are not both in the segment"
    if packet in PRODUCTS:
        bias_name = BIAS_ARGUMENTS.get(packet)
        if packet == "div":
            return is_zero.get("self", False), f"{node.where} divides a non-zero numerator"
        factors = [z for name, z in is_zero.items() if name != bias_name]
        bias = node.args.get(bias_name) if bias_name else None
        bias_zero = bias is None or (isinstance(bias, Value) and bias.id in zero)
        return any(factors) and bias_zero, f"{node.where} is not zero (no zero factor, or a bias outside the segment)"
    if packet in SUMS:
        ok = bool(operands) and all(is_zero.values()) and not _scalar_is_nonzero(node)
        if packet == "where":
            ok = all(z for name, z in is_zero.items() if name != "condition")
        return ok, f"{node.where} adds something that is not zero"
    if packet in PRESERVES_ZERO:
        ok = bool(operands) and all(is_zero.values()) and node.args.get("value", 0) in (0, None)
        return ok, f"{node.where} has an input that is not zero"
    if packet in ("constant_pad_nd", "pad"):
        return operands[0][1].id in zero and node.args.get("value", 0) in (0, None), f"{node.where} pads with a non-zero value"
    return False, f"{node.where}: trainonce cannot prove that it maps zero to zero"


def output_is_zero(nodes: Iterable[Node], parameters: set[int]) -> tuple[set[int], str | None]:
    """Values proven zero when the ``parameters`` (value ids) are zero, walking ``nodes`` in order.

    Returns the zero value ids and, for the last node that broke the chain, why (None if every
    node's outputs are zero).
    """
    zero = set(parameters)
    last_failure: str | None = None
    for node in nodes:
        ok, why = _node_is_zero(node, zero)
        if ok:  # indices and masks (integer or bool outputs) are not zero
            zero.update(v.id for v in node.outputs if v.dtype.is_floating_point or v.dtype.is_complex)
        else:
            last_failure = why
    return zero, last_failure
