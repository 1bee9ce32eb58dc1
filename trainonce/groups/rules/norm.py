"""Normalisation ops.

Per-channel statistics (BatchNorm, InstanceNorm) keep channels independent: the affine
parameters and running statistics are sliced with the channel, and with affine parameters a
zeroed channel outputs exactly zero. Statistics *over* channels (LayerNorm, RMSNorm) mix every
channel into every other, so removing one changes the rest: those spaces are frozen. GroupNorm
mixes channels only inside a group, so whole groups can go: its channels are ``groups x
width`` with the width digit frozen.
"""

from __future__ import annotations

from trainonce.graph.ir import Node, Value
from trainonce.groups.propagate import GroupNormRecord, Propagation, rule


def _per_channel(p: Propagation, node: Node, x: Value, params: list[Value | None]) -> None:
    for param in params:
        if isinstance(param, Value):
            p.unify(p.dim(x, 1), p.dim(param, 0), node)
            p.produce(param, 0)


def _copy_to_outputs(p: Propagation, node: Node, x: Value, channel_zero: bool) -> None:
    out = node.outputs[0]
    zero = [False] * x.ndim
    if x.ndim > 1:
        zero[1] = channel_zero
    p.set(out, p.dims(x), zero)
    for extra in node.outputs[1:]:  # saved mean / invstd / updated running stats: per channel
        if extra.ndim == 1 and x.ndim > 1 and extra.shape[0] == x.shape[1]:
            p.set(extra, [p.dim(x, 1)], [False])


def _affine_zero(p: Propagation, weight: object, bias: object, fallback: bool) -> bool:
    """A zeroed affine weight (and bias) zeroes the channel whatever the statistics are."""
    if isinstance(weight, Value):
        return p.is_zero(weight, 0) and (not isinstance(bias, Value) or p.is_zero(bias, 0))
    return fallback and not isinstance(bias, Value)


@rule("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
      "native_batch_norm", "_native_batch_norm_legit", "instance_norm", "cudnn_batch_norm", "_batch_norm_impl_index")
def batch_norm(p: Propagation, node: Node) -> None:
    x = node.args["input"]
    weight, bias = node.args.get("weight"), node.args.get("bias")
    stats = [node.args.get("running_mean"), node.args.get("running_var")]
    _per_channel(p, node, x, [weight, bias, *stats])
    # Statistics of the input itself (instance norm, batch norm without running statistics or in
    # training mode) are taken over every other position: those dims are normalised over.
    input_stats = bool(node.args.get("use_input_stats", True)) if node.packet == "instance_norm" else \
        bool(node.args.get("training", False))
    if input_stats:
        for d in [0, *range(2, x.ndim)]:
            p.freeze(p.dim(x, d), f"normalised over by {node.where} (statistics of the input itself)")
    # Without affine weights a zero channel stays zero only with batch (instance) statistics.
    _copy_to_outputs(p, node, x, _affine_zero(p, weight, bias, input_stats and p.is_zero(x, 1)))


@rule("group_norm", "native_group_norm")
def group_norm(p: Propagation, node: Node) -> None:
    x = node.args["input"]
    groups = int(node.args.get("num_groups") or node.args.get("group") or 1)
    weight, bias = node.args.get("weight"), node.args.get("bias")
    width = x.shape[1] // groups

    def run() -> None:
        channels = p.dim(x, 1)
        if width > 1:
            group_layout, inner = p.atoms.split_layout(channels, [groups, width])
            p.freeze(inner, f"channels normalised together inside one group of {node.where}")
        else:
            group_layout = channels
        p.group_norms.append(GroupNormRecord(node.module, groups, width, group_layout))
        _per_channel(p, node, x, [weight, bias])
        for d in range(2, x.ndim):
            p.freeze(p.dim(x, d), f"normalised over by {node.where}")
        _copy_to_outputs(p, node, x, _affine_zero(p, weight, bias, p.is_zero(x, 1)))

    p.guarded(node, run)


@rule("layer_norm", "native_layer_norm", "rms_norm", "_fused_rms_norm")
def layer_norm(p: Propagation, node: Node) -> None:
    x = node.args["input"]
    shape = list(node.args["normalized_shape"])
    first = x.ndim - len(shape)
    for d in range(first, x.ndim):
        p.freeze(p.dim(x, d), f"normalised over by {node.where} (its statistics mix all these channels)")
    for param in (node.args.get("weight"), node.args.get("bias")):
        if isinstance(param, Value):
            for k in range(param.ndim):
                p.unify(p.dim(param, k), p.dim(x, first + k), node)
    out = node.outputs[0]
    p.set(out, p.dims(x), [False] * x.ndim)
    for extra in node.outputs[1:]:
        p.set_fresh(extra, f"statistics of {node.where}")
