"""Capture: ``torch.export`` (non-strict) of a model into trainonce's typed IR.

The model is traced in eval mode (the structure that will be deployed; BatchNorm uses running
statistics) and, for HuggingFace models, without a KV cache. Its training flag and config are
restored afterwards whatever happens. Parameters and buffers are attached to graph values by
identity through the export graph signature.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any

import torch
from torch.export import Dim
from torch.export.graph_signature import InputKind
from torch.utils import _pytree as pytree

from trainonce.errors import CaptureError
from trainonce.graph.equality import compare
from trainonce.graph.execution import run, tracing_mode, untouched
from trainonce.graph.inputs import ExampleInputs, output_tensors
from trainonce.graph.ir import Graph, Node, Value, ValueKind

_KIND_OF_INPUT = {
    InputKind.PARAMETER: ValueKind.PARAMETER,
    InputKind.BUFFER: ValueKind.BUFFER,
    InputKind.CONSTANT_TENSOR: ValueKind.CONSTANT,
    InputKind.USER_INPUT: ValueKind.INPUT,
}


def export(model: torch.nn.Module, inputs: ExampleInputs) -> torch.export.ExportedProgram:
    """``torch.export`` with an error that names the construct that could not be traced."""
    with tracing_mode(model), torch.no_grad():
        try:
            return torch.export.export(model, inputs.args, inputs.kwargs, strict=False)
        except Exception as error:
            lines = [line for line in str(error).splitlines() if line.strip()]
            detail = "\n  ".join(lines[:12])
            raise CaptureError(
                f"torch.export could not trace {type(model).__name__} "
                f"({type(error).__name__}):\n  {detail}\n"
                "trainonce needs a model that torch.export(strict=False) can trace with the "
                "given example inputs: data-dependent Python control flow, .item()/.tolist() on "
                "tensors and unsupported Python constructs must be rewritten (see the line "
                "named above)."
            ) from error


def export_batch_dynamic(model: torch.nn.Module, inputs: ExampleInputs) -> torch.export.ExportedProgram | None:
    """Export with dim 0 of every batch-sized input dynamic; None if the model pins the batch.

    A batch of one is doubled for the trace: torch.export specialises sizes 0 and 1.
    """
    leaves = [t for t in pytree.tree_leaves((inputs.args, inputs.kwargs)) if isinstance(t, torch.Tensor)]
    if not leaves or leaves[0].ndim == 0:
        return None
    batch = leaves[0].shape[0]

    def batched(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.ndim > 0 and t.shape[0] == batch

    widened = inputs.map(lambda t: torch.cat([t, t]) if batched(t) and batch == 1 else t)
    shapes = pytree.tree_map(lambda t: {0: Dim.AUTO} if batched(t) else None, (inputs.args, inputs.kwargs))
    try:
        with tracing_mode(model), torch.no_grad():
            # keyword inputs are named by the dynamic_shapes dict; positional ones by position
            program = torch.export.export(model, widened.args, widened.kwargs, strict=False,
                                          dynamic_shapes=_by_argument(model, widened, shapes))
    except Exception:
        return None
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user = [placeholders[name].meta.get("val") for name in program.graph_signature.user_inputs]
    dynamic = any(isinstance(v, torch.Tensor) and v.ndim and isinstance(v.shape[0], torch.SymInt) for v in user)
    return program if dynamic else None


def _by_argument(model: torch.nn.Module, inputs: ExampleInputs, shapes: tuple[Any, Any]) -> Any:
    """``dynamic_shapes`` in the form torch.export wants: a tuple for positional-only, else by name."""
    args_shapes, kwargs_shapes = shapes
    if not inputs.kwargs:
        return tuple(args_shapes)
    bound = inspect.signature(model.forward).bind(*inputs.args, **inputs.kwargs)
    by_name = dict(zip(list(bound.arguments)[: len(inputs.args)], args_shapes, strict=True))
    by_name.update(kwargs_shapes)
    return by_name


def capture(model: torch.nn.Module, example_inputs: Any) -> tuple[Graph, torch.export.ExportedProgram]:
    """Trace ``model`` on ``example_inputs`` and return the IR and the exported program."""
    inputs = ExampleInputs.of(example_inputs)
    program = export(model, inputs)
    return _build_graph(model, program), program


def capture_for_surgery(model: torch.nn.Module, example_inputs: Any) -> tuple[Graph, torch.export.ExportedProgram, bool]:
    """The IR of a program that graph surgery can edit, the program, and whether its batch is dynamic.

    Erasing deletes ops from the program itself, so analysis and construction must see the very
    same graph (node for node). It is exported with a dynamic batch dimension when the model
    allows it (the erased model then runs at any batch size) and functionalised: an in-place op
    reads and writes one tensor that other branches may share, and once a joint is rewired that
    tensor can be another branch's input; functional ops have no such hidden edges. The IR's
    sizes are those of the example inputs whatever batch the trace used.
    """
    inputs = ExampleInputs.of(example_inputs)
    program = export_batch_dynamic(model, inputs)
    dynamic = program is not None
    if program is None:
        program = export(model, inputs)
    with tracing_mode(model), torch.no_grad():
        program = program.run_decompositions({})
        _check_faithful(model, program, inputs)
    return _build_graph(model, program, _example_batch(program, inputs) if dynamic else None), program, dynamic


def _check_faithful(model: torch.nn.Module, program: torch.export.ExportedProgram, inputs: ExampleInputs) -> None:
    """The program must compute what the model computes: erasing edits the program, not the model.

    They can differ where eager code mutates a tensor through an alias the trace does not see
    (``dropout(x).mul_(2)`` in eval mode writes into ``x``), and then no erased model could ever
    be verified against the original.
    """
    with untouched(model) as buffers:
        expected = run(model, buffers, inputs)
    actual = output_tensors(program.module()(*inputs.args, **inputs.kwargs))
    verdict = compare(expected, actual, names=("original", "exported"))
    if not verdict.exact:
        raise CaptureError(
            f"torch.export's program of {type(model).__name__} does not reproduce it on the example inputs "
            f"({verdict.detail}). Erase mode edits that program, so it cannot be used on this model; the usual cause "
            "is an in-place op on a tensor another op aliases (e.g. dropout(x).mul_(2) in eval mode writes into x): "
            "make it out-of-place. Pruning mode (the default) does not depend on the program")


def _example_batch(program: torch.export.ExportedProgram, inputs: ExampleInputs) -> dict[Any, int]:
    """Symbol -> example size for every dynamic input dimension (to give the IR concrete sizes)."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    leaves = [t for t in pytree.tree_leaves((inputs.args, inputs.kwargs)) if isinstance(t, torch.Tensor)]
    sizes: dict[Any, int] = {}
    for name, leaf in zip(program.graph_signature.user_inputs, leaves, strict=False):
        meta = placeholders[name].meta.get("val")
        if isinstance(meta, torch.Tensor):
            for traced, actual in zip(meta.shape, leaf.shape, strict=False):
                if isinstance(traced, torch.SymInt):
                    sizes[traced.node.expr] = int(actual)
    return sizes


def _tensor_names(model: torch.nn.Module) -> dict[int, list[str]]:
    """id(tensor) -> every qualified name under which the model holds it (tied weights)."""
    names: dict[int, list[str]] = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, tensor in named:
        names.setdefault(id(tensor), []).append(name)
    return names


def _lookup(model: torch.nn.Module, program: torch.export.ExportedProgram, target: str) -> torch.Tensor:
    if target in program.constants:
        constant = program.constants[target]
        return constant if isinstance(constant, torch.Tensor) else torch.empty(0)
    module_path, _, leaf = target.rpartition(".")
    owner = model.get_submodule(module_path) if module_path else model
    return getattr(owner, leaf)


def _size(dim: Any, symbols: dict[Any, int] | None) -> int:
    """A concrete size: symbolic sizes are evaluated at the example's sizes (else their trace hint)."""
    if not isinstance(dim, torch.SymInt):
        return int(dim)
    expr = dim.node.expr
    if symbols:
        value = expr.xreplace(symbols)
        if isinstance(value, int) or getattr(value, "is_number", False):
            return int(value)
    return int(dim.node.hint)


def _build_graph(model: torch.nn.Module, program: torch.export.ExportedProgram,
                 symbols: dict[Any, int] | None = None) -> Graph:
    names_by_id = _tensor_names(model)
    specs = {spec.arg.name: spec for spec in program.graph_signature.input_specs if hasattr(spec.arg, "name")}
    values: list[Value] = []
    value_of: dict[Any, Any] = {}  # fx node -> Value, or list of Values for multi-output nodes
    nodes: list[Node] = []
    user_inputs: list[Value] = []

    def new_value(name: str, meta: torch.Tensor, kind: ValueKind, **extra: Any) -> Value:
        value = Value(len(values), name, tuple(_size(s, symbols) for s in meta.shape), meta.dtype, kind, **extra)
        values.append(value)
        return value

    for fx_node in program.graph.nodes:
        meta = fx_node.meta.get("val")
        if fx_node.op == "placeholder":
            spec = specs.get(fx_node.name)
            if spec is None or not isinstance(meta, torch.Tensor):
                continue
            kind = _KIND_OF_INPUT.get(spec.kind, ValueKind.CONSTANT)
            if kind is ValueKind.INPUT:
                value = new_value(fx_node.name, meta, kind)
                user_inputs.append(value)
            else:
                tensor = _lookup(model, program, spec.target)
                fqns = tuple(names_by_id.get(id(tensor), [spec.target]))
                value = new_value(fx_node.name, meta, kind, tensor=tensor, fqns=fqns)
            value_of[fx_node] = value
        elif fx_node.op == "call_function":
            if fx_node.target is operator.getitem:
                source = value_of.get(fx_node.args[0])
                if isinstance(source, list):
                    value_of[fx_node] = source[fx_node.args[1]]
                continue
            node = _make_node(fx_node, len(nodes), value_of)
            outputs = meta if isinstance(meta, (list, tuple)) else [meta]
            if not node.inputs and not any(isinstance(out, torch.Tensor) for out in outputs):
                continue  # arithmetic on symbolic sizes (a dynamic batch): no tensor in, none out
            produced: list[Any] = []
            for i, out in enumerate(outputs):
                if isinstance(out, torch.Tensor):
                    value = new_value(f"{fx_node.name}" + (f"[{i}]" if len(outputs) > 1 else ""), out, ValueKind.ACTIVATION, producer=node)
                    node.outputs.append(value)
                    produced.append(value)
                else:
                    produced.append(None)
            value_of[fx_node] = produced if isinstance(meta, (list, tuple)) else (produced[0] if produced else None)
            for value in node.inputs:
                value.users.append(node)
            nodes.append(node)
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    user_outputs = [
        spec.arg.name for spec in program.graph_signature.output_specs if spec.kind.name == "USER_OUTPUT" and hasattr(spec.arg, "name")
    ]
    fx_outputs = {n.name: n for n in output_node.args[0] if hasattr(n, "name")}
    outputs = [value_of[fx_outputs[name]] for name in user_outputs if isinstance(value_of.get(fx_outputs.get(name)), Value)]
    return Graph(nodes, values, user_inputs, outputs, type(model).__name__)


def _make_node(fx_node: Any, index: int, value_of: dict[Any, Any]) -> Node:
    target = fx_node.target

    def convert(arg: Any) -> Any:
        if isinstance(arg, torch.fx.Node):
            return value_of.get(arg)
        if isinstance(arg, (list, tuple)):
            return type(arg)(convert(a) for a in arg)
        return arg

    args = _bind(target, [convert(a) for a in fx_node.args], {k: convert(v) for k, v in fx_node.kwargs.items()})
    inputs: list[Value] = []
    for arg in args.values():
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, Value) and item not in inputs:
                inputs.append(item)
    stack = fx_node.meta.get("nn_module_stack") or {}
    module, module_type = ("", "")
    if stack:
        module, module_type = list(stack.values())[-1]
        module_type = module_type.rsplit(".", 1)[-1] if isinstance(module_type, str) else getattr(module_type, "__name__", str(module_type))
    if isinstance(target, torch._ops.OpOverload):
        op = f"{target.namespace}.{target._opname}.{target._overloadname}"
        packet = target._opname
    else:
        op = getattr(target, "__name__", str(target))
        packet = op
    return Node(index, fx_node.name, op, packet, target, args, inputs, [], str(module), module_type)


def _bind(target: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Name every argument of an ATen call by its schema (defaults filled in)."""
    schema = getattr(target, "_schema", None)
    if schema is None:
        bound = {f"arg{i}": a for i, a in enumerate(args)}
        bound.update(kwargs)
        return bound
    bound = {}
    for i, argument in enumerate(schema.arguments):
        if i < len(args) and not argument.kwarg_only:
            bound[argument.name] = args[i]
        elif argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
        else:
            bound[argument.name] = None
    return bound
