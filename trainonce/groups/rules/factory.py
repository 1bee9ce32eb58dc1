"""Tensors created inside ``forward``: their sizes are fixed in the code, so they are frozen."""

from __future__ import annotations

from trainonce.graph.ir import Node
from trainonce.groups.propagate import Propagation, rule


@rule("zeros", "ones", "full", "empty", "arange", "rand", "randn", "randint", "scalar_tensor", "zeros_like",
      "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "new_zeros", "new_ones",
      "new_full", "new_empty", "linspace", "logspace", "eye", "tensor", "empty_strided", "new_empty_strided",
      "bernoulli", "multinomial")
def factory(p: Propagation, node: Node) -> None:
    for out in node.outputs:
        p.set_fresh(out, f"created with a size fixed in the code by {node.where}")


@rule("_assert_tensor_metadata", "_assert_async", "_assert_scalar", "sym_constrain_range_for_size",
      "_functional_assert_async", "sym_size", "sym_numel", "sym_stride", "_set_grad_enabled")
def no_tensor_effect(p: Propagation, node: Node) -> None:
    for out in node.outputs:
        p.set_fresh(out, f"output of {node.where}")
