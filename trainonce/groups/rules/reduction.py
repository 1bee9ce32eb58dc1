"""Reductions and normalising maps over a dimension.

Removing zero entries leaves a *sum* unchanged, so a summed dim stays prunable when its
zeroed channels are exactly zero there. Every other reduction (mean divides by the count, max
may pick the zero, softmax normalises) changes when a channel is removed: its dims freeze.
"""

from __future__ import annotations

from trainonce.graph.ir import Node
from trainonce.groups.propagate import Propagation, rule

ZERO_SAFE = ("sum", "nansum")
KEEPS_ZERO = ("sum", "nansum", "mean", "nanmean", "amax", "amin", "max", "min", "var", "std", "prod", "norm",
              "linalg_vector_norm", "var_mean", "std_mean", "aminmax")


@rule("sum", "nansum", "mean", "nanmean", "amax", "amin", "max", "min", "var", "std", "prod", "logsumexp",
      "norm", "linalg_vector_norm", "argmax", "argmin", "all", "any", "count_nonzero", "var_mean", "std_mean",
      "aminmax", "median", "nanmedian", "mode")
def reduce(p: Propagation, node: Node) -> None:
    x = node.inputs[0]
    dims = node.args.get("dim")
    if dims is None:
        dims = node.args.get("dims", None)
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(x.ndim))
    reduced = sorted({d % x.ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])}) if x.ndim else []
    keepdim = bool(node.args.get("keepdim", False))
    packet = node.packet.rstrip("_")
    for d in reduced:
        if packet in ZERO_SAFE:
            p.contract(node, [(x, d)])
        else:
            p.freeze(p.dim(x, d), f"reduced over by {node.where} (removing a channel would change it)")
    for out in node.outputs:
        layouts, zero = [], []
        for d in range(x.ndim):
            if d in reduced:
                if keepdim:
                    layouts.append(p.fresh(1, "reduced dimension"))
                    zero.append(False)
                continue
            layouts.append(p.dim(x, d))
            zero.append(p.is_zero(x, d) and packet in KEEPS_ZERO)
        if len(layouts) == out.ndim:
            p.set(out, layouts, zero)
        else:
            p.set_fresh(out, f"output of {node.where}")


@rule("softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax")
def softmax(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    axis = node.args["dim"] % x.ndim
    p.freeze(p.dim(x, axis), f"normalised over by {node.where}")
    p.set(out, p.dims(x), [False] * x.ndim)
