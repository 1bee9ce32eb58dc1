"""Loading a saved directory is reading data: no code named in the files runs without trust_code=True.

A directory can come from anywhere (a colleague, a hub, a bug report), so each test edits one
file as an attacker or a damaged disk would, and checks that ``trainonce.load`` either refuses
with an error naming the file and the entry, or loads exactly what was saved, and never runs the
named code (a marker file would appear if it did).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

import trainonce
from tests.io.common import assert_same_outputs, pruned
from trainonce.errors import TrainonceError
from zoo import build


def saved(tmp_path: Path, factory: str | None = None) -> tuple[Path, torch.nn.Module, object]:
    compact, inputs = pruned("resnet18_cifar")
    directory = tmp_path / "saved"
    trainonce.save(compact, directory, factory=factory)
    return directory, compact, inputs


def edit(directory: Path, change: object) -> None:
    path = directory / "trainonce.json"
    record = json.loads(path.read_text())
    change(record)  # type: ignore[operator]
    path.write_text(json.dumps(record))


def test_a_factory_edited_to_run_a_command_does_not_run(tmp_path: Path) -> None:
    directory, _, _ = saved(tmp_path, factory="zoo.resnet:resnet18_cifar")
    marker = tmp_path / "ran"
    edit(directory, lambda r: r.update(factory="subprocess:run", factory_kwargs={"args": ["touch", str(marker)]}))
    with pytest.raises(TrainonceError, match=r"'subprocess:run'.*not a torch.nn.modules.module.Module subclass"):
        trainonce.load(directory)
    assert not marker.exists()


def test_a_class_from_a_module_not_yet_imported_is_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory, _, _ = saved(tmp_path)
    package = tmp_path / "plugins"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "sneaky.py").write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Net(torch.nn.Module):\n    pass\n")
    monkeypatch.syspath_prepend(str(package))
    edit(directory, lambda r: r.update({"class": "sneaky:Net"}))
    with pytest.raises(TrainonceError, match="has not imported"):
        trainonce.load(directory)
    assert not marker.exists() and "sneaky" not in sys.modules


def test_trust_code_lets_a_factory_function_run(tmp_path: Path) -> None:
    directory, compact, inputs = saved(tmp_path, factory="zoo.resnet:resnet18_cifar")
    with pytest.raises(TrainonceError, match="trust_code=True"):
        trainonce.load(directory)  # ResNet() needs arguments, and the factory is a function
    assert_same_outputs(compact, trainonce.load(directory, trust_code=True), inputs)


def test_an_attribute_the_class_does_not_have_is_refused(tmp_path: Path) -> None:
    directory, compact, _ = saved(tmp_path)
    edit(directory, lambda r: r["modules"]["layer1.0.conv1"]["attributes"].update(forward_hook_path="os:system"))
    with pytest.raises(TrainonceError, match=r"sets 'forward_hook_path' on module 'layer1.0.conv1'"):
        trainonce.load(directory, model=type(compact)(*_resnet_arguments()))


def _resnet_arguments() -> tuple[object, ...]:
    from zoo.resnet import BasicBlock

    return (BasicBlock, (2, 2, 2, 2))


@pytest.mark.parametrize(("damage", "message"), [
    ("shape", r"tensor 'conv1.weight' is \[.*\] float32 in the weight files but \[1, 1\] float32 in trainonce.json"),
    ("dtype", r"tensor 'conv1.weight' is .* float32 in the weight files but .* float16 in trainonce.json"),
    ("missing", r"the weight files lack \['fc.bias'\]"),
    ("json", r"trainonce.json is not valid JSON"),
    ("entry", r"trainonce.json lacks the entries \['tensors'\]"),
    ("truncated", r"model.safetensors cannot be read \(truncated or corrupted\?\)"),
])
def test_damaged_files_are_named(tmp_path: Path, damage: str, message: str) -> None:
    directory, compact, _ = saved(tmp_path)
    spec = directory / "trainonce.json"
    weights = directory / "model.safetensors"
    if damage == "shape":
        edit(directory, lambda r: r["tensors"]["conv1.weight"].update(shape=[1, 1]))
    elif damage == "dtype":
        edit(directory, lambda r: r["tensors"]["conv1.weight"].update(dtype="float16"))
    elif damage == "missing":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(weights))
        del tensors["fc.bias"]
        save_file(tensors, str(weights), metadata={"format": "pt"})
    elif damage == "json":
        spec.write_text(spec.read_text()[:-20])
    elif damage == "entry":
        edit(directory, lambda r: r.pop("tensors"))
    else:
        weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(TrainonceError, match=message):
        trainonce.load(directory, model=type(compact)(*_resnet_arguments()))


def test_erased_programs_load_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, inputs = build("super_residual")
    space = trainonce.analyze(model, inputs, mode="erase")
    space.zero_random(0.5, seed=0)
    compact = space.construct().eval()
    trainonce.save(compact, tmp_path, example_inputs=inputs)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used while loading")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(target, name, refuse)
    loaded = trainonce.load(tmp_path)
    assert_same_outputs(compact, loaded.eval(), inputs)


def test_a_pt2_archive_is_refused_without_trust(tmp_path: Path) -> None:
    model, inputs = build("super_residual")
    program = torch.export.export(model.eval(), (inputs,), strict=False)
    torch.export.save(program, tmp_path / "model.pt2")
    record = {"format": "trainonce/1", "kind": "exported_program", "class_name": "Net", "training": False,
              "file": "model.pt2", "tensors": {}}
    (tmp_path / "trainonce.json").write_text(json.dumps(record))
    with pytest.raises(TrainonceError, match=r"model.pt2 is a torch.export archive, which torch.export.load may unpickle"):
        trainonce.load(tmp_path)
    loaded = trainonce.load(tmp_path, trust_code=True)
    with torch.no_grad():
        assert torch.allclose(loaded(inputs), model(inputs))
