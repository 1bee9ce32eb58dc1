"""``trainonce.load``: rebuild a saved model on a skeleton of its class, running no code named in the files.

The skeleton is any instance of the saved class with the saved module tree, whatever its widths;
its attributes and tensors are then replaced by the saved ones. It comes from, in order: the
``model=`` argument, the factory recorded at save time, the HuggingFace config saved beside the
weights, or the class called without arguments. Built skeletons are made on the ``meta`` device
when the class allows it, so a full-size model is never allocated just to be thrown away.

The files are data, and a directory can come from anywhere, so what they name is treated with
care, as ``trust_remote_code`` does in transformers: without ``trust_code=True`` nothing is called
unless it is a ``torch.nn.Module`` class (a config: a transformers ``PretrainedConfig`` class) from
a module this program has already imported or from an installed library trainonce trusts
(``spec.TRUSTED_PACKAGES``), so a recorded factory *function* does not run, and no file is
unpickled.
Every tensor is checked against the shape and dtype the spec lists, and a malformed file is an
error that names the file and the entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch._export.serde.serialize import SerializedArtifact, deserialize

from trainonce.errors import TrainonceError
from trainonce.io import spec, weights
from trainonce.io.save import FORMAT, SPEC

MODULE_KEYS = ("class", "aliases", "modules", "tensors")
PROGRAM_KEYS = ("class_name", "training", "file", "tensors")


def load(directory: str | os.PathLike[str], model: nn.Module | None = None, *,
         device: str | torch.device = "cpu", trust_code: bool = False) -> nn.Module:
    """The model saved by :func:`trainonce.save` in ``directory``, on ``device``.

    ``model``: a fresh instance of the saved class (any widths, e.g. the full-size model), needed
    when the class cannot be built from what was saved (a constructor with required arguments
    and no ``factory=`` at save time). It is filled in place and returned. ``trust_code``: allow
    the files to name code to run (the recorded factory, classes from modules not imported yet,
    ``.pt2`` archives that ``torch.export.load`` unpickles); only for directories you trust.
    """
    directory = Path(directory)
    record = _read_record(directory)
    if record["kind"] == "exported_program":
        if model is not None:
            raise TrainonceError(f"{directory} holds a torch.export program, which is loaded as is: drop model=")
        return _load_program(directory, record, device, trust_code)
    skeleton = model if model is not None else _skeleton(directory, record, trust_code)
    found = spec.class_path(type(skeleton))
    if found != record["class"]:
        raise TrainonceError(f"{directory} holds a {record['class']}, not a {found}")
    spec.check_tree(skeleton, record)
    tensors = weights.read(directory, record["aliases"], device)
    spec.check_tensors(record, tensors, str(directory))
    spec.apply(skeleton, record, tensors)
    if model is not None and "hf" in record:
        # the given model's config has its own (full) widths; submodules share this one object
        config: Any = model.config
        config.update(_saved_config(directory, record, trust_code).to_dict())
    return skeleton


def _read_record(directory: Path) -> dict[str, Any]:
    """``trainonce.json``, checked for the entries loading relies on."""
    path = directory / SPEC
    if not path.exists():
        raise TrainonceError(f"{directory} has no {SPEC}: it was not written by trainonce.save")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrainonceError(f"{path} is not valid JSON ({error}): the file is damaged") from None
    if not isinstance(record, dict):
        raise TrainonceError(f"{path} holds a {type(record).__name__}, not a trainonce record")
    if record.get("format") != FORMAT:
        raise TrainonceError(f"{path} has format {record.get('format')!r}; this trainonce reads {FORMAT!r}")
    kind = record.get("kind")
    required = {"module": MODULE_KEYS, "exported_program": PROGRAM_KEYS}.get(kind)  # type: ignore[arg-type]
    if required is None:
        raise TrainonceError(f"{path}: unknown kind {kind!r}")
    missing = [key for key in required if key not in record]
    if missing:
        raise TrainonceError(f"{path} lacks the entries {missing}: the file is damaged")
    for key in ("modules", "tensors", "aliases"):
        if key in record and not isinstance(record[key], dict):
            raise TrainonceError(f"{path}: entry {key!r} must be an object, got {type(record[key]).__name__}")
    for name, entry in record.get("modules", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("class"), str) or not isinstance(entry.get("attributes"), dict):
            raise TrainonceError(f"{path}: entry modules[{name!r}] is malformed")
    for name, entry in record["tensors"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list) or not isinstance(entry.get("dtype"), str):
            raise TrainonceError(f"{path}: entry tensors[{name!r}] is malformed")
    return record


def _load_program(directory: Path, record: dict[str, Any], device: str | torch.device, trust_code: bool) -> nn.Module:
    """The saved program as a plain GraphModule (the exported module refuses ``train()``/``eval()``)."""
    path = directory / record["file"]
    if path.suffix == ".pt2":  # written by trainonce before programs were stored without pickle
        if not trust_code:
            raise TrainonceError(f"{path} is a torch.export archive, which torch.export.load may unpickle (running "
                                 "code from the file): pass trust_code=True if you trust it, then save it again")
        exported = torch.export.load(path)
    else:
        tensors = weights.read_file(directory / weights.WEIGHTS)
        spec.check_tensors(record, tensors, str(directory))
        state = {k.removeprefix("state/"): nn.Parameter(v) if record["tensors"][k].get("parameter") is True else v
                 for k, v in tensors.items() if k.startswith("state/")}
        constants = {k.removeprefix("constant/"): v for k, v in tensors.items() if k.startswith("constant/")}
        try:
            # torch's deserializer takes tensor dicts as they are; only bytes would go through torch.load
            exported = deserialize(SerializedArtifact(path.read_bytes(), state, constants, None))  # type: ignore[arg-type]
        except Exception as error:
            raise TrainonceError(f"{path} cannot be read as a torch.export program: {type(error).__name__}: "
                                 f"{str(error)[:300]}") from None
    module = exported.module()
    graph_module = fx.GraphModule(module, module.graph, class_name=str(record["class_name"]))
    return graph_module.train(bool(record["training"])).to(device)


def _skeleton(directory: Path, record: dict[str, Any], trust_code: bool) -> nn.Module:
    """A module of the saved class from the first source that works; else say what to pass."""
    cls_path = record["class"]
    sources: list[tuple[str, Callable[[], Any]]] = []
    factory = record.get("factory")
    if factory:  # untrusted, only a module class: a file must not make trainonce call a function
        kwargs = record.get("factory_kwargs", {})
        if not isinstance(kwargs, dict):
            raise TrainonceError(f"{directory / SPEC}: entry 'factory_kwargs' must be an object")
        sources.append((f"factory {factory}", lambda: spec.import_path(
            factory, trust_code=trust_code, kind=nn.Module, source=f"the factory {factory!r} in {SPEC}")(**kwargs)))
    if "hf" in record:
        sources.append((f"config.json and {record['hf'].get('config_class')}",
                        lambda: _from_config(directory, record, trust_code)))
    sources.append((f"{cls_path}()", lambda: _model_class(cls_path, trust_code)()))
    reasons = []
    for what, make in sources:
        try:
            return _cheap(make)
        except TrainonceError as error:
            reasons.append(f"{what}: {error}")
        except Exception as error:  # any failure of user code means: try the next source
            reasons.append(f"{what}: {type(error).__name__}: {error}")
    name = cls_path.rpartition(":")[2].rpartition(".")[2]
    untrusted = (f" The file records the factory {factory!r}; a factory that is not a module class runs only with "
                 "trust_code=True." if factory and not trust_code else "")
    raise TrainonceError(
        f"cannot build a {cls_path} to load {directory} into ({'; '.join(reasons)}).{untrusted} Pass a fresh instance of "
        f"the class, any widths: trainonce.load({str(directory)!r}, model={name}(...)), or save with "
        "trainonce.save(..., factory='module:function')"
    )


def _model_class(path: str, trust_code: bool) -> Any:
    return spec.import_path(path, trust_code=trust_code, kind=nn.Module, source=f"the class {path!r} in {SPEC}")


def _saved_config(directory: Path, record: dict[str, Any], trust_code: bool) -> Any:
    """The transformers config from ``config.json``, with the attention kernel the model used."""
    import transformers

    config_cls = spec.import_path(record["hf"].get("config_class"), trust_code=trust_code,
                                  kind=transformers.PretrainedConfig, source=f"the config class in {SPEC}")
    attention = record["hf"].get("attn_implementation")
    return config_cls.from_pretrained(directory, **({"attn_implementation": attention} if attention else {}))


def _from_config(directory: Path, record: dict[str, Any], trust_code: bool) -> nn.Module:
    return _model_class(record["class"], trust_code)(_saved_config(directory, record, trust_code))


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
    except TrainonceError:
        raise
    except Exception:  # a constructor that computes with its tensors cannot run on meta
        pass
    return _module_of(make())


def _module_of(built: Any) -> nn.Module:
    """A factory may return the module, or a tuple with it first (e.g. ``(model, example_inputs)``)."""
    module = built[0] if isinstance(built, tuple) and built else built
    if not isinstance(module, nn.Module):
        raise TrainonceError(f"expected an nn.Module, got {type(module).__name__}")
    return module
