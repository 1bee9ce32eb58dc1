"""Elementwise ops: operands broadcast together, every output dim is one channel space.

What differs between them is zero preservation: the output channel is zero when
- ``unary``: the input is zero and f(0) = 0 (relu, gelu, silu, tanh, casts, dropout, ...);
- ``all``: every operand is zero (add, sub, where);
- ``any``: some operand is zero (mul);
- ``numerator``: the numerator is zero (div; a zeroed denominator would divide by zero);
- ``never``: f(0) != 0 (sigmoid, exp, comparisons) - a zeroed channel becomes a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

from trainonce.graph.ir import Node, Value
from trainonce.groups.propagate import Propagation, rule

ZERO_PRESERVING_UNARY = (
    "relu", "relu6", "gelu", "silu", "tanh", "neg", "abs", "leaky_relu", "elu", "selu", "celu",
    "mish", "hardswish", "sin", "sinh", "asin", "asinh", "atan", "atanh", "tan", "erf", "erfinv",
    "sign", "sgn", "sqrt", "square", "dropout", "feature_dropout", "alpha_dropout",
    "feature_alpha_dropout", "clone", "contiguous", "detach", "alias", "_to_copy", "to", "type_as",
    "lift_fresh_copy", "trunc", "round", "floor", "ceil", "frac", "softshrink", "hardshrink",
    "expm1", "log1p",
)
NEVER_ZERO = (
    "sigmoid", "exp", "exp2", "log", "log2", "log10", "cos", "cosh", "reciprocal", "rsqrt",
    "softplus", "hardsigmoid", "log_sigmoid", "logical_not", "isnan", "isinf", "isfinite", "eq",
    "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "bitwise_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "logit", "erfc", "acos", "sigmoid_backward",
)
VIEW_LIKE = ("clone", "contiguous", "detach", "alias", "_to_copy", "to", "type_as", "lift_fresh_copy")


def elementwise(p: Propagation, node: Node, operands: list[Any], mode: str, extra: Sequence[Value] = ()) -> None:
    """Broadcast ``operands`` (Values or Python scalars) into the node's first output."""
    out = node.outputs[0]
    tensors = [v for v in operands if isinstance(v, Value)]
    scalars = [v for v in operands if isinstance(v, Number)]
    layouts, zero = [], []
    for d in range(out.ndim):
        carriers = []  # operands whose dim is not broadcast here
        for v in [*tensors, *extra]:
            k = d - (out.ndim - v.ndim)
            if k >= 0 and (v.shape[k] == out.shape[d]):
                carriers.append((v, k))
        if not carriers:
            layouts.append(p.fresh(out.shape[d], f"broadcast dimension at {node.where}"))
            zero.append(False)
            continue
        layouts.append(p.unify_all(node, carriers))
        value_carriers = [(v, k) for v, k in carriers if any(v is t for t in tensors)]
        zs = [p.is_zero(v, k) for v, k in value_carriers]
        full = len(value_carriers) == len(tensors)
        if mode == "unary":
            z = bool(zs) and zs[0]
        elif mode == "all":
            z = full and all(zs) and all(s == 0 for s in scalars)
        elif mode == "any":
            z = any(zs) or any(s == 0 for s in scalars)
        elif mode == "numerator":
            z = bool(value_carriers) and value_carriers[0][0] is tensors[0] and zs[0]
            for v, k in value_carriers[1:]:
                p.freeze(p.dim(v, k), f"divisor of {node.where} (a zeroed channel would divide by zero)")
        else:
            z = False
        zero.append(z)
    p.set(out, layouts, zero)
    for v in tensors:
        offset = out.ndim - v.ndim
        for k in range(v.ndim):
            if v.shape[k] == out.shape[k + offset]:
                p.produce(v, k)
    if node.packet.endswith("_") and tensors and tensors[0].ndim == out.ndim:
        for d in range(out.ndim):  # an in-place op: the mutated input shares the output's spaces
            p.unify(p.dim(tensors[0], d), layouts[d], node)
    if node.packet.rstrip("_") in VIEW_LIKE and tensors:
        source = p.param_of(tensors[0])
        if source is not None:
            p.origin[out.id] = source


@rule(*ZERO_PRESERVING_UNARY)
def unary(p: Propagation, node: Node) -> None:
    first = next((a for a in node.args.values() if isinstance(a, Value)), None)
    if first is None:
        p.set_fresh(node.outputs[0], f"output of {node.where}")
        return
    elementwise(p, node, [first], "unary")


@rule("prelu", "_prelu_kernel")
def prelu(p: Propagation, node: Node) -> None:
    """PReLU's weight is per channel along dim 1 (not right-aligned like broadcasting)."""
    x, weight = node.args["self"], node.args["weight"]
    elementwise(p, node, [x], "unary")
    if weight.shape[0] > 1:
        p.unify(p.dim(weight, 0), p.dim(node.outputs[0], 1 if x.ndim > 1 else 0), node)


@rule(*NEVER_ZERO)
def never_zero(p: Propagation, node: Node) -> None:
    operands = [a for a in node.args.values() if isinstance(a, (Value, Number)) and not isinstance(a, bool)]
    elementwise(p, node, operands[:3], "never")


@rule("add", "sub", "rsub", "maximum", "minimum", "fmax", "fmin", "hypot", "copysign")
def additive(p: Propagation, node: Node) -> None:
    a = node.args.get("self", node.args.get("input"))
    b = node.args.get("other")
    elementwise(p, node, [a, b], "all")


@rule("mul", "logaddexp")
def multiplicative(p: Propagation, node: Node) -> None:
    elementwise(p, node, [node.args["self"], node.args["other"]], "any" if node.packet.startswith("mul") else "never")


@rule("div", "true_divide", "floor_divide", "fmod", "remainder")
def division(p: Propagation, node: Node) -> None:
    mode = "numerator" if node.packet.rstrip("_") in ("div", "true_divide", "floor_divide", "fmod") else "never"
    elementwise(p, node, [node.args["self"], node.args["other"]], mode)


@rule("where")
def where(p: Propagation, node: Node) -> None:
    condition = node.args["condition"]
    elementwise(p, node, [node.args["self"], node.args["other"]], "all", extra=[condition] if isinstance(condition, Value) else [])


@rule("masked_fill")
def masked_fill(p: Propagation, node: Node) -> None:
    value = node.args["value"]
    fill = value if isinstance(value, (Value, Number)) else 0
    elementwise(p, node, [node.args["self"], fill], "all", extra=[node.args["mask"]])


@rule("clamp", "clip", "hardtanh")
def clamp(p: Propagation, node: Node) -> None:
    low = node.args.get("min", node.args.get("min_val"))
    high = node.args.get("max", node.args.get("max_val"))
    if isinstance(low, Value) or isinstance(high, Value):
        elementwise(p, node, [node.args["self"]], "never", extra=[v for v in (low, high) if isinstance(v, Value)])
        return
    keeps_zero = (low is None or low <= 0) and (high is None or high >= 0)
    elementwise(p, node, [node.args["self"]], "unary" if keeps_zero else "never")


@rule("threshold")
def threshold(p: Propagation, node: Node) -> None:
    elementwise(p, node, [node.args["self"]], "unary" if node.args["value"] == 0 else "never")


@rule("pow")
def power(p: Propagation, node: Node) -> None:
    base, exponent = node.args.get("self"), node.args.get("exponent")
    if isinstance(base, Value) and isinstance(exponent, (int, float)) and exponent > 0:
        elementwise(p, node, [base], "unary")
    else:
        elementwise(p, node, [v for v in (base, exponent) if isinstance(v, (Value, Number))], "never")


@rule("lerp", "addcmul", "addcdiv")
def ternary(p: Propagation, node: Node) -> None:
    operands = [a for a in node.args.values() if isinstance(a, Value)]
    elementwise(p, node, operands, "never")


@rule("native_dropout")
def native_dropout(p: Propagation, node: Node) -> None:
    elementwise(p, node, [node.args["input"]], "unary")
    if len(node.outputs) > 1:
        p.set(node.outputs[1], p.dims(node.outputs[0]), [False] * node.outputs[1].ndim)
