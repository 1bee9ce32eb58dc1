"""``trainonce.save``: a compact model as safetensors + JSON, with no pickled code.

A pickle of a model stores a reference to its code and runs arbitrary code when read; a
``state_dict`` alone cannot be loaded into the class, whose constructor builds the full widths.
The directory therefore holds the weights (``model.safetensors``) and ``trainonce.json``: the
class as an import path and the architecture spec (every submodule's widths), from which
:func:`trainonce.load` rebuilds the compact model on a skeleton of the class. A HuggingFace
model also gets its ``config.json``, so the directory is what ``save_pretrained`` writes.

A ``torch.fx.GraphModule`` (what erase-mode construction returns) has generated code and no
class to rebuild, so it is saved as a ``torch.export`` program: the graph in torch's JSON
serialisation (``program.json``, ops named as ``torch.ops`` overloads, no code) and its tensors in
``model.safetensors``. ``torch.export.save`` is not used: its ``.pt2`` archive pickles the
weights, and ``torch.export.load`` falls back to an unrestricted unpickler.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch._export.serde.serialize import serialize

from trainonce.errors import TrainonceError
from trainonce.graph.inputs import ExampleInputs
from trainonce.io import spec, weights
from trainonce.io.exporter import exported_program, quiet

FORMAT = "trainonce/1"
SPEC = "trainonce.json"
PROGRAM = "program.json"


def save(model: nn.Module, directory: str | os.PathLike[str], *, example_inputs: Any = None,
         factory: str | Callable[..., Any] | None = None, factory_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` to ``directory`` (created if needed) and return the directory.

    ``factory``: an importable function (or its ``"module:function"`` path) that builds a
    full-size instance of the model's class (or a tuple whose first item is one), recorded so that
    :func:`trainonce.load` needs no ``model=`` for classes whose constructor takes arguments;
    ``factory_kwargs`` (JSON values) are passed to it, so one factory serves several model sizes.
    ``example_inputs`` are needed only for a ``GraphModule``, which is traced into ``model.pt2``.

    For a HuggingFace model whose layers were all pruned alike, construction keeps ``config``
    consistent and ``from_pretrained(directory)`` loads the result as well. With per-layer widths
    the config cannot describe the model, nor can it describe pruned heads where the head size is
    derived as ``hidden_size / num_attention_heads`` (BERT, GPT-2; Llama states ``head_dim``):
    :func:`trainonce.load` is the way to load those.
    """
    try:
        json.dumps(dict(factory_kwargs or {}))
    except TypeError as error:
        raise TrainonceError(f"factory_kwargs must be JSON values (numbers, strings, lists, dicts): {error}") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"format": FORMAT}
    if isinstance(model, fx.GraphModule):
        if example_inputs is None:
            raise TrainonceError(f"{type(model).__name__} is a GraphModule (e.g. from erase-mode construction): it "
                                 "is saved as a torch.export program, which needs example inputs: "
                                 "trainonce.save(model, directory, example_inputs=...)")
        with quiet(verbose=False):
            program = exported_program(model, ExampleInputs.of(example_inputs), dynamic_batch=True)
        record.update(kind="exported_program", class_name=type(model).__name__, training=model.training, file=PROGRAM,
                      tensors=_write_program(program, directory))
    else:
        record.update(kind="module", **_module_record(model, directory, factory))
        record["factory_kwargs"] = dict(factory_kwargs or {})
    (directory / SPEC).write_text(json.dumps(record, indent=1))
    return directory


def _write_program(program: torch.export.ExportedProgram, directory: Path) -> dict[str, Any]:
    """``program.json`` and ``model.safetensors`` for ``program``; returns the tensor listing for the spec."""
    named = {f"state/{k}": v for k, v in program.state_dict.items()}
    for key, value in program.constants.items():
        if not isinstance(value, torch.Tensor):
            raise TrainonceError(f"the program holds a non-tensor constant {key!r} ({type(value).__name__}), which "
                                 "trainonce cannot store without pickle")
        named[f"constant/{key}"] = value
    stored, seen = {}, set()
    for key, tensor in named.items():  # safetensors refuses two names on one storage: copy the second
        pointer = (tensor.device, tensor.untyped_storage().data_ptr())
        stored[key] = tensor.detach().clone() if pointer in seen else tensor.detach()
        seen.add(pointer)
    (directory / PROGRAM).write_bytes(serialize(program).exported_program)
    weights.write_file(stored, directory / weights.WEIGHTS)
    (directory / weights.BUFFERS).unlink(missing_ok=True)
    return {key: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                  "parameter": isinstance(named[key], nn.Parameter)} for key, t in stored.items()}


def _module_record(model: nn.Module, directory: Path, factory: str | Callable[..., Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {"class": spec.class_path(type(model)), "factory": _factory_path(factory)}
    config = _hf_config(model)
    if config is not None:
        config.save_pretrained(directory)
        record["hf"] = {"config_class": spec.class_path(type(config)),
                        "attn_implementation": getattr(config, "_attn_implementation", None)}
    record["aliases"] = weights.write(model, directory)
    record.update(spec.collect(model))
    return record


def _hf_config(model: nn.Module) -> Any:
    """The model's transformers config, or None (transformers is not imported for other models)."""
    transformers = sys.modules.get("transformers")
    config = getattr(model, "config", None)
    return config if transformers is not None and isinstance(config, transformers.PretrainedConfig) else None


def _factory_path(factory: str | Callable[..., Any] | None) -> str | None:
    """The factory's import path, checked now so that a bad one fails at save, not at load."""
    if factory is None:
        return None
    path = factory if isinstance(factory, str) else f"{factory.__module__}:{factory.__qualname__}"
    found = spec.import_path(path)
    if not callable(found):
        raise TrainonceError(f"factory {path!r} is not callable")
    return path
