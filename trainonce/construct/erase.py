"""Construction in erasing mode: delete whole segments from the exported graph.

Deleting an operator cannot be done by slicing tensors in the user's module tree (its
``forward`` still calls the operator), so the compact model is the *exported program* of the
model with the erased segments cut out: a ``torch.fx.GraphModule`` that takes and returns the
same structures as the model. Steps (ALGORITHMS.md §3): rewire every joint that lost operands
(an add keeps its other operand, a concat drops the slice), delete the erased segments and every
op left without a path to an output, slice the parameters that read dropped concat slices (and
the shape arguments of views over them), and keep only the parameters still used.

The program is the one analysis saw (``graph.capture.capture_for_surgery``): functional, so a
rewired joint cannot feed an in-place op that writes into another branch's tensor, and exported
with a dynamic batch dimension when the model allows it, so the compact model runs at any batch
size; otherwise it is specialised to the example shapes like any ``torch.export`` program.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from trainonce.construct.plan import Kept, kept_positions, kept_size, slice_to_kept

if TYPE_CHECKING:
    from trainonce.groups.erasing import ErasingSpace

SHAPE_OPS = frozenset({"view", "_unsafe_view", "reshape", "expand"})  # their size list is argument 1


def erased_module(space: ErasingSpace, candidates: list[int], device: str | None = None) -> fx.GraphModule:
    """The model without the erased ``candidates`` (indices into ``space.erasing.candidates``).

    ``device="meta"`` builds a skeleton without any weight, ``"share"`` one that reads the
    model's own weights (both for the forward-only probe); by default weights are copied.
    """
    erasing = space.erasing
    removed = {erasing.candidates[g] for g in candidates}
    gone = erasing.gone(candidates)
    module = _template(space)
    graph = module.graph
    by_name = {n.name: n for n in graph.nodes}
    for joint_id, operands in erasing.operands.items():
        if joint_id in gone:
            continue
        dropped = [o for o in operands if o.source in removed]
        if dropped:
            _rewire_joint(by_name[erasing.segments[joint_id].nodes[0].name], [o.slot for o in dropped])
    _erase_unused(graph, {by_name[n.name] for s in gone for n in erasing.segments[s].nodes})
    kept = _dropped_slices(space, removed)
    if kept:
        _resize_views(space, by_name, kept, {n.name for s in gone for n in erasing.segments[s].nodes})
    graph.eliminate_dead_code()
    # a plain GraphModule: the exported module refuses train()/eval(), which users and tools call
    compact = fx.GraphModule(module, graph, class_name=f"Erased{space.graph.model_name}")
    _install_tensors(space, compact, kept, device)
    compact.recompile()
    return compact


def _template(space: ErasingSpace) -> fx.GraphModule:
    """A fresh ``GraphModule`` of the analysed program, without its input-shape guards when the batch is dynamic."""
    module = space.program.module()
    if space.dynamic_batch:
        for node in [n for n in module.graph.nodes if n.op == "call_module" and n.target == "_guards_fn"]:
            module.graph.erase_node(node)
    return module


def _rewire_joint(joint: fx.Node, slots: list[str | int]) -> None:
    """Make a joint work without the given operand slots."""
    if joint.target in (torch.ops.aten.cat.default, torch.ops.aten.concat.default):
        tensors = [t for i, t in enumerate(joint.args[0]) if i not in slots]  # type: ignore[arg-type]
        if len(tensors) == 1:
            joint.replace_all_uses_with(tensors[0])
            joint.graph.erase_node(joint)  # it would still read the dropped operand
        else:
            joint.args = (tensors, *joint.args[1:])
        return
    names = ["self", "other"]
    operands = dict(zip(names, joint.args[:2], strict=False))
    operands.update({k: v for k, v in joint.kwargs.items() if k in names})
    (survivor,) = [value for name, value in operands.items() if name not in slots]
    joint.replace_all_uses_with(survivor)  # type: ignore[arg-type]
    joint.graph.erase_node(joint)


def _erase_unused(graph: fx.Graph, doomed: set[fx.Node]) -> None:
    """Erase the doomed nodes (and the ``getitem``s unpacking them) that nothing else reads any more.

    A doomed node some surviving node still reads (a ``sym_size`` a view takes its batch size
    from) stays, and so does what it reads: erasing follows the graph, never a list alone.
    """
    doomed |= {user for node in doomed for user in node.users if user.target is operator.getitem}
    for node in reversed(list(graph.nodes)):
        if node in doomed and not node.users:
            graph.erase_node(node)


def _dropped_slices(space: ErasingSpace, removed: set[int]) -> Kept:
    """Kept masks that drop the concat slices of the erased segments."""
    kept: Kept = {}
    for segment_id in removed:
        for atom in space.erasing.segments[segment_id].cat_atoms:
            kept[atom.id] = torch.zeros(atom.size, dtype=torch.bool)
    return kept


def _resize_views(space: ErasingSpace, by_name: dict[str, fx.Node], kept: Kept, gone: set[str]) -> None:
    """Shape arguments of views/reshapes over a concat that lost slices."""
    p = space.propagation
    for node in space.graph.nodes:
        if node.packet not in SHAPE_OPS or node.name in gone or not node.outputs:
            continue
        layouts = [p.atoms.normalize(layout) for layout in p.dims(node.outputs[0])]
        changed = [d for d, layout in enumerate(layouts) if kept_positions(layout, kept) is not None]
        if not changed:
            continue
        fx_node = by_name[node.name]
        sizes = list(fx_node.args[1])  # type: ignore[arg-type]
        for d in changed:
            if isinstance(sizes[d], int) and sizes[d] != -1:
                sizes[d] = kept_size(layouts[d], kept)
        fx_node.args = (fx_node.args[0], sizes, *fx_node.args[2:])


def _install_tensors(space: ErasingSpace, module: fx.GraphModule, kept: Kept, device: str | None) -> None:
    """Replace the (aliased) weights of the exported module by sliced copies; drop unused ones."""
    used = {n.target for n in module.graph.nodes if n.op == "get_attr"}
    by_name = {name: value for value in space.graph.tensors for name in value.fqns}
    made: dict[int, torch.Tensor] = {}
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    for name, tensor in named:
        owner_path, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        if name not in used:
            delattr(owner, leaf)
            continue
        if id(tensor) not in made:
            made[id(tensor)] = _copy(tensor, by_name.get(name), space, kept, device)
        new = made[id(tensor)]
        if isinstance(tensor, nn.Parameter):
            setattr(owner, leaf, nn.Parameter(new, requires_grad=tensor.requires_grad))
        else:
            owner.register_buffer(leaf, new) if leaf in owner._buffers else setattr(owner, leaf, new)
    module.delete_all_unused_submodules()


def _copy(tensor: torch.Tensor, value: Any, space: ErasingSpace, kept: Kept, device: str | None) -> torch.Tensor:
    new = tensor.detach()
    if value is not None and kept:
        new = slice_to_kept(new, space.layouts[value.id], kept)
    if device == "meta":
        return torch.empty_like(new, device="meta")
    if device == "share" or new.data_ptr() != tensor.data_ptr():
        return new
    return new.clone()

