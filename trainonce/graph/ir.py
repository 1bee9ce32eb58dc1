"""The typed graph trainonce analyses: ATen nodes over tensor values, nothing else.

It is deliberately small. A ``Value`` is one tensor (shape and dtype known statically); a
``Node`` is one ATen op call with its schema-bound arguments, in which tensors are ``Value``s and
everything else is a Python constant. Parameters and buffers are ``Value``s that carry the real
tensor object, found by identity from the export signature, never by parsing printed IR.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import torch


class ValueKind(enum.Enum):
    INPUT = "input"  # a user input of the model
    PARAMETER = "parameter"
    BUFFER = "buffer"
    CONSTANT = "constant"  # a tensor constant lifted out of the module
    ACTIVATION = "activation"  # produced by a node


@dataclass(eq=False)
class Value:
    id: int
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: ValueKind
    producer: Node | None = None
    users: list[Node] = field(default_factory=list)
    tensor: torch.Tensor | None = None  # parameters, buffers and constants only
    fqns: tuple[str, ...] = ()  # every name of the tensor in the model (tied weights have several)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def label(self) -> str:
        return self.fqns[0] if self.fqns else self.name

    def __repr__(self) -> str:
        return f"Value({self.name}, {list(self.shape)})"


@dataclass(eq=False)
class Node:
    index: int
    name: str
    op: str  # e.g. "aten.conv2d.default"
    packet: str  # op without namespace and overload, in-place suffix kept: "conv2d", "relu_"
    target: Any
    args: dict[str, Any]
    inputs: list[Value]
    outputs: list[Value]
    module: str  # path of the innermost module that called the op ("" = root)
    module_type: str

    @property
    def where(self) -> str:
        """Human readable location for error messages."""
        module = f"module '{self.module}' ({self.module_type})" if self.module else "the root module"
        return f"{self.op} in {module}"

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


@dataclass(eq=False)
class Graph:
    nodes: list[Node]
    values: list[Value]
    inputs: list[Value]
    outputs: list[Value]
    model_name: str

    @property
    def parameters(self) -> list[Value]:
        return [v for v in self.values if v.kind is ValueKind.PARAMETER]

    @property
    def tensors(self) -> list[Value]:
        """Parameters and buffers: everything construction may have to slice."""
        return [v for v in self.values if v.kind in (ValueKind.PARAMETER, ValueKind.BUFFER)]
