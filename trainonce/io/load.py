"""``trainonce.load``: rebuild a saved model on a skeleton of its class.

The skeleton is any instance of the saved class with the saved module tree, whatever its widths;
its attributes and tensors are then replaced by the saved ones. It comes from, in order: the
``model=`` argument, the factory recorded at save time, the HuggingFace config saved beside the
weights, or the class called without arguments. Built skeletons are made on the ``meta`` device
when the class allows it, so a full-size model is never allocated just to be thrown away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from trainonce.errors import TrainonceError
from trainonce.io import spec, weights
from trainonce.io.save import FORMAT, SPEC


def load(directory: str | os.PathLike[str], model: nn.Module | None = None, *,
         device: str | torch.device = "cpu") -> nn.Module:
    """The model saved by :func:`trainonce.save` in ``directory``, on ``device``.

    ``model``: a fresh instance of the saved class (any widths, e.g. the full-size model), needed
    when the class cannot be built from what was saved (a constructor with required arguments
    and no ``factory=`` at save time). It is filled in place and returned.
    """
    directory = Path(directory)
    record = _read_record(directory)
    if record["kind"] == "exported_program":
        if model is not None:
            raise TrainonceError(f"{directory} holds a torch.export program, which is loaded as is: drop model=")
        return _load_program(directory, record, device)
    skeleton = model if model is not None else _skeleton(directory, record)
    found = spec.class_path(type(skeleton))
    if found != record["class"]:
        raise TrainonceError(f"{directory} holds a {record['class']}, not a {found}")
    spec.check_tree(skeleton, record)
    spec.apply(skeleton, record, weights.read(directory, record["aliases"], device))
    if model is not None and "hf" in record:
        # the given model's config has its own (full) widths; submodules share this one object
        config: Any = model.config
        config.update(_saved_config(directory, record).to_dict())
    return skeleton


def _read_record(directory: Path) -> dict[str, Any]:
    path = directory / SPEC
    if not path.exists():
        raise TrainonceError(f"{directory} has no {SPEC}: it was not written by trainonce.save")
    record: dict[str, Any] = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise TrainonceError(f"{path} has format {record.get('format')!r}; this trainonce reads {FORMAT!r}")
    return record


def _load_program(directory: Path, record: dict[str, Any], device: str | torch.device) -> nn.Module:
    """The saved program as a plain GraphModule (the exported module refuses ``train()``/``eval()``)."""
    exported = torch.export.load(directory / record["file"]).module()
    module = fx.GraphModule(exported, exported.graph, class_name=record["class_name"])
    return module.train(record["training"]).to(device)


def _skeleton(directory: Path, record: dict[str, Any]) -> nn.Module:
    """A module of the saved class from the first source that works; else say what to pass."""
    cls_path = record["class"]
    sources: list[tuple[str, Callable[[], Any]]] = []
    if record.get("factory"):
        sources.append((f"factory {record['factory']}", lambda: spec.import_path(record["factory"])(**record.get("factory_kwargs", {}))))
    if "hf" in record:
        sources.append((f"config.json and {record['hf']['config_class']}", lambda: _from_config(directory, record)))
    sources.append((f"{cls_path}()", lambda: spec.import_path(cls_path)()))
    reasons = []
    for what, make in sources:
        try:
            return _cheap(make)
        except Exception as error:  # any failure of user code means: try the next source
            reasons.append(f"{what}: {type(error).__name__}: {error}")
    name = cls_path.rpartition(":")[2].rpartition(".")[2]
    raise TrainonceError(
        f"cannot build a {cls_path} to load {directory} into ({'; '.join(reasons)}). Pass a fresh instance of "
        f"the class, any widths: trainonce.load({str(directory)!r}, model={name}(...)), or save with "
        "trainonce.save(..., factory='module:function')"
    )


def _saved_config(directory: Path, record: dict[str, Any]) -> Any:
    """The transformers config from ``config.json``, with the attention kernel the model used."""
    config_cls = spec.import_path(record["hf"]["config_class"])
    attention = record["hf"]["attn_implementation"]
    return config_cls.from_pretrained(directory, **({"attn_implementation": attention} if attention else {}))


def _from_config(directory: Path, record: dict[str, Any]) -> nn.Module:
    return spec.import_path(record["class"])(_saved_config(directory, record))


def _cheap(make: Callable[[], Any]) -> nn.Module:
    """Build on the meta device; really build only if that fails or leaves a tensor unsaved.

    A tensor kept as a plain attribute (not a parameter or buffer) is not in the file, so a
    skeleton whose plain attributes are meta tensors would be unusable.
    """
    try:
        with torch.device("meta"):
            module = _module_of(make())
        if not any(isinstance(v, torch.Tensor) and v.is_meta for m in module.modules() for v in vars(m).values()):
            return module
    except Exception:  # a constructor that computes with its tensors cannot run on meta
        pass
    return _module_of(make())


def _module_of(built: Any) -> nn.Module:
    """A factory may return the module, or a tuple with it first (e.g. ``(model, example_inputs)``)."""
    module = built[0] if isinstance(built, tuple) and built else built
    if not isinstance(module, nn.Module):
        raise TrainonceError(f"expected an nn.Module, got {type(module).__name__}")
    return module
