"""Architecture spec: the widths of a module tree, written as JSON and put back on a skeleton.

A compact model differs from a freshly built instance of its class only in tensor shapes and in
the plain attributes that construction rewrote (``out_features``, ``groups``, ``num_heads``,
``head_dim`` ...). Rather than knowing which attributes matter for which layer, the spec records
*every* public scalar attribute of every submodule, and every parameter and buffer shape, and
puts all of them back. That restores whatever construction changed, for any module class,
without ever storing code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import torch
from torch import nn

from trainonce.errors import TrainonceError

Scalar = int | float | bool | str | None
SpecDict = dict[str, Any]


def class_path(cls: type) -> str:
    """``module:qualname``, the import path under which ``cls`` is found again."""
    return f"{cls.__module__}:{cls.__qualname__}"


# Libraries whose modules may be imported to resolve a class named in a saved file: installed
# code the user already runs, with no import-time side effects. Anything else must already be
# imported by the program (``trust_code=True`` lifts the restriction).
TRUSTED_PACKAGES = ("torch", "transformers", "diffusers", "peft", "trainonce")


def import_path(path: str, *, trust_code: bool = True, kind: type | None = None, source: str = "") -> Any:
    """The object named by ``module:qualname`` (a class or a factory function).

    With ``trust_code=False`` (names read from a file) nothing new is imported outside
    ``TRUSTED_PACKAGES`` (an import runs the module's code), and the object must be a subclass
    of ``kind``: a file cannot make trainonce call an arbitrary function.
    """
    if not isinstance(path, str):
        raise TrainonceError(f"{source or 'an import path'} must be a 'module:name' string, got {type(path).__name__}")
    module_name, _, qualname = path.partition(":")
    if not qualname or "<locals>" in qualname:
        raise TrainonceError(f"{path!r} is not importable (a 'module:name' path at module level is needed)")
    trusted_package = module_name.split(".")[0] in TRUSTED_PACKAGES
    if not trust_code and module_name not in sys.modules and not trusted_package:
        raise TrainonceError(
            f"{source or path!r} names the module {module_name!r}, which this program has not imported: importing it "
            "would run code named in a file. Import it yourself first, or pass trust_code=True if you trust the file")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise TrainonceError(f"cannot import {path!r}: {error}") from error
    if kind is not None and not trust_code and not (isinstance(found, type) and issubclass(found, kind)):
        raise TrainonceError(f"{source or path!r} names {path!r}, which is not a {kind.__module__}.{kind.__qualname__} "
                             "subclass; only classes of that kind are built from a file without trust_code=True")
    return found


def encode(value: Any) -> Any:
    """JSON form of a public scalar attribute (tuples tagged, so they come back as tuples)."""
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"tuple"} or not isinstance(value["tuple"], list):
            raise TrainonceError(f"malformed attribute value {value!r} in trainonce.json")
        return tuple(decode(v) for v in value["tuple"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def is_scalar(value: Any) -> bool:
    """int/float/bool/str/None, or tuples/lists of them: the values a width can hide in."""
    if isinstance(value, (tuple, list)):
        return all(is_scalar(v) for v in value)
    return value is None or isinstance(value, (int, float, bool, str))


def tensor_names(model: nn.Module) -> list[tuple[str, torch.Tensor, str]]:
    """(name, tensor, "parameter"/"buffer") under every name, tied tensors included."""
    return [*((n, t, "parameter") for n, t in model.named_parameters(remove_duplicate=False)),
            *((n, t, "buffer") for n, t in model.named_buffers(remove_duplicate=False))]


def collect(model: nn.Module) -> SpecDict:
    """Module classes, their public scalar attributes, and every tensor's shape and kind."""
    modules = {
        path: {
            "class": class_path(type(module)),
            "attributes": {k: encode(v) for k, v in vars(module).items() if not k.startswith("_") and is_scalar(v)},
        }
        for path, module in model.named_modules(remove_duplicate=False)
    }
    tensors = {
        name: {"kind": kind, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
               "requires_grad": tensor.requires_grad}
        for name, tensor, kind in tensor_names(model)
    }
    return {"modules": modules, "tensors": tensors}


def check_tree(skeleton: nn.Module, spec: SpecDict) -> None:
    """The skeleton must have the saved module tree and tensor names; name the first difference."""
    saved = spec["modules"]
    found = {path: class_path(type(m)) for path, m in skeleton.named_modules(remove_duplicate=False)}
    for path, entry in saved.items():
        where = f"module {path!r}" if path else "the root module"
        if path not in found:
            raise TrainonceError(f"the skeleton has no {where} (saved as {entry['class']}); it was built "
                                 "with a different architecture (number of layers, blocks, options)")
        if found[path] != entry["class"]:
            raise TrainonceError(f"{where} is {found[path]} in the skeleton but was saved as {entry['class']}")
    extra = [path for path in found if path not in saved]
    if extra:
        raise TrainonceError(f"the skeleton has a module {extra[0]!r} ({found[extra[0]]}) that the saved model lacks")
    kinds = {name: kind for name, _, kind in tensor_names(skeleton)}
    for name, entry in spec["tensors"].items():
        if kinds.get(name) != entry["kind"]:
            now = f"a {kinds[name]}" if name in kinds else "nothing"
            raise TrainonceError(f"{entry['kind']} {name!r} of the saved model is {now} in the skeleton")
    extra = [name for name in kinds if name not in spec["tensors"]]
    if extra:
        raise TrainonceError(f"the skeleton has a {kinds[extra[0]]} {extra[0]!r} that the saved model lacks")


def check_tensors(spec: SpecDict, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Every tensor the spec lists, with the shape and dtype it lists, and nothing else."""
    listed = spec["tensors"]
    missing, unexpected = sorted(set(listed) - set(tensors)), sorted(set(tensors) - set(listed))
    if missing or unexpected:
        raise TrainonceError(f"{where}: the weight files {'lack ' + repr(missing[:3]) if missing else ''}"
                             f"{' and ' if missing and unexpected else ''}"
                             f"{'hold unlisted ' + repr(unexpected[:3]) if unexpected else ''} (tensors of trainonce.json)")
    for name, entry in listed.items():
        tensor = tensors[name]
        shape, dtype = list(tensor.shape), str(tensor.dtype).removeprefix("torch.")
        if shape != entry.get("shape") or dtype != entry.get("dtype"):
            raise TrainonceError(f"{where}: tensor {name!r} is {shape} {dtype} in the weight files but "
                                 f"{entry.get('shape')} {entry.get('dtype')} in trainonce.json")


def apply(skeleton: nn.Module, spec: SpecDict, tensors: dict[str, torch.Tensor]) -> None:
    """Set the recorded attributes and install ``tensors`` (one object per name, so ties hold).

    Only attributes the skeleton's modules already have are set, with scalar values: the file
    can change widths, not add behaviour.
    """
    modules = dict(skeleton.named_modules(remove_duplicate=False))
    for path, entry in spec["modules"].items():
        for name, value in entry["attributes"].items():
            decoded = decode(value)
            if name.startswith("_") or not hasattr(modules[path], name) or not is_scalar(decoded):
                where = f"module {path!r}" if path else "the root module"
                raise TrainonceError(f"trainonce.json sets {name!r} on {where}, which the skeleton does not have as a "
                                     "public attribute: the file does not match the class")
            setattr(modules[path], name, decoded)
    installed: dict[int, torch.Tensor] = {}
    for name, entry in spec["tensors"].items():
        tensor = tensors[name]
        if entry["kind"] == "parameter" and id(tensor) not in installed:
            installed[id(tensor)] = nn.Parameter(tensor, requires_grad=entry["requires_grad"])
        value = installed.get(id(tensor), tensor)
        owner_path, _, leaf = name.rpartition(".")
        owner = modules[owner_path]
        # as load_state_dict(assign=True) does: the slot is replaced, its persistence flag kept
        if entry["kind"] == "parameter":
            owner._parameters[leaf] = value
        else:
            owner._buffers[leaf] = value
