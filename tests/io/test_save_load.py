"""trainonce.save / trainonce.load: exact round trips of pruned models, without pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import trainonce
from tests.io.common import assert_same_outputs, outputs, pruned
from trainonce.errors import TrainonceError
from trainonce.io.spec import collect
from zoo import build
from zoo.misc import TiedEmbeddingLM
from zoo.resnet import BasicBlock, ResNet

ALLOWED_FILES = {"trainonce.json", "model.safetensors", "buffers.safetensors", "config.json"}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any unpickling during the test an error: loading must not need it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used while loading")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(target, name, refuse)


def test_cnn_round_trip_is_exact_with_a_full_size_skeleton(tmp_path: Path) -> None:
    compact, inputs = pruned("resnet18_cifar")
    trainonce.save(compact, tmp_path)
    skeleton = ResNet(BasicBlock, (2, 2, 2, 2))  # full widths: the saved ones replace them
    loaded = trainonce.load(tmp_path, model=skeleton)
    assert loaded is skeleton
    assert_same_outputs(compact, loaded, inputs)
    assert _params(loaded) == _params(compact) < 11_173_962
    assert collect(loaded) == collect(compact)  # every width attribute and tensor shape restored
    assert not loaded.training


def test_factory_recorded_at_save_replaces_the_model_argument(tmp_path: Path, no_pickle: None) -> None:
    compact, inputs = pruned("resnet18_cifar")
    trainonce.save(compact, tmp_path, factory="zoo.resnet:resnet18_cifar")  # returns (model, inputs)
    # a factory function named in a file runs only when the caller trusts the directory
    assert_same_outputs(compact, trainonce.load(tmp_path, trust_code=True), inputs)


def test_tied_weight_is_stored_once_and_tied_again(tmp_path: Path, no_pickle: None) -> None:
    model, inputs = build("tied_embedding")
    space = trainonce.analyze(model, inputs)
    space.zero_random(0.5, seed=0)
    compact = space.construct().eval()
    assert compact.head.weight is compact.embed.weight
    trainonce.save(compact, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as file:
        names = set(file.keys())
    assert "embed.weight" in names and "head.weight" not in names
    spec = json.loads((tmp_path / "trainonce.json").read_text())
    assert spec["aliases"] == {"head.weight": "embed.weight"}
    loaded = trainonce.load(tmp_path)  # TiedEmbeddingLM() takes no arguments: no skeleton needed
    assert isinstance(loaded, TiedEmbeddingLM)
    assert loaded.head.weight is loaded.embed.weight
    assert loaded.mlp[0].out_features == compact.mlp[0].out_features < 64
    assert_same_outputs(compact, loaded, inputs)


@pytest.mark.parametrize("name", ["hf_llama_gqa", "hf_bert"])
def test_pruned_hf_model_loads_without_a_model_argument(tmp_path: Path, name: str, no_pickle: None) -> None:
    compact, inputs = pruned(name)
    trainonce.save(compact, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} <= ALLOWED_FILES
    assert (tmp_path / "config.json").exists()
    loaded = trainonce.load(tmp_path)
    assert type(loaded) is type(compact)
    assert collect(loaded) == collect(compact)
    assert_same_outputs(compact, loaded, inputs)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


def test_llama_gqa_widths_differ_per_layer_and_survive(tmp_path: Path) -> None:
    """zero_random prunes layers unevenly: the config cannot hold the widths, the spec does."""
    compact, _ = pruned("hf_llama_gqa")
    widths = {layer.mlp.up_proj.out_features for layer in compact.model.layers}
    assert len(widths) > 1, "the test needs non-uniform MLP widths"
    trainonce.save(compact, tmp_path)
    loaded = trainonce.load(tmp_path)
    for saved, restored in zip(compact.model.layers, loaded.model.layers, strict=True):
        assert restored.mlp.up_proj.weight.shape == saved.mlp.up_proj.weight.shape
        assert restored.self_attn.num_key_value_groups == saved.self_attn.num_key_value_groups
        assert restored.self_attn.k_proj.out_features < 32  # one of two kv heads removed


def _uniformly_pruned(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Half of every head group and MLP group removed, alike in every layer: the config stays exact."""
    model, inputs = build(name)
    config = model.config
    space = trainonce.analyze(model, inputs)
    uniform = {config.intermediate_size} | ({config.num_key_value_heads} if name == "hf_llama_gqa" else set())
    redundant = {g.id: torch.arange(g.size // 2) for g in space.prunable_groups if g.size in uniform}
    space.zero_groups(redundant)
    return space.construct(redundant).eval(), inputs


@pytest.mark.parametrize("name", ["hf_llama_gqa", "hf_bert"])
def test_uniformly_pruned_hf_model_loads_with_from_pretrained(tmp_path: Path, name: str) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    compact, inputs = _uniformly_pruned(name)
    assert compact.config.intermediate_size == 64
    if name == "hf_llama_gqa":
        assert (compact.config.num_attention_heads, compact.config.num_key_value_heads) == (2, 1)
    trainonce.save(compact, tmp_path)
    auto = AutoModelForCausalLM if name == "hf_llama_gqa" else AutoModelForSequenceClassification
    for loader in (auto, type(compact)):
        assert_same_outputs(compact, loader.from_pretrained(tmp_path).eval(), inputs)
    assert_same_outputs(compact, trainonce.load(tmp_path), inputs)


def test_directory_holds_no_pickle(tmp_path: Path) -> None:
    compact, _ = pruned("hf_llama_gqa")
    trainonce.save(compact, tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(files) <= ALLOWED_FILES
    for name, data in files.items():
        if name.endswith(".json"):
            json.loads(data)
            continue
        # safetensors: an 8-byte header length, a JSON header, then raw tensor bytes and nothing else
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        assert 8 + length + max(ends) == len(data), name


def test_wrong_class_and_wrong_tree_are_named(tmp_path: Path) -> None:
    compact, _ = pruned("resnet18_cifar")
    trainonce.save(compact, tmp_path)
    with pytest.raises(TrainonceError, match=r"holds a zoo.resnet:ResNet, not a zoo.misc:TiedEmbeddingLM"):
        trainonce.load(tmp_path, model=TiedEmbeddingLM())
    shallower = ResNet(BasicBlock, (2, 1, 2, 2), widths=(8, 8, 8, 8))
    with pytest.raises(TrainonceError, match=r"no module 'layer2.1' \(saved as zoo.resnet:BasicBlock\)"):
        trainonce.load(tmp_path, model=shallower)


def test_unbuildable_class_says_what_to_pass(tmp_path: Path) -> None:
    compact, _ = pruned("resnet18_cifar")
    trainonce.save(compact, tmp_path)
    with pytest.raises(TrainonceError, match=r"model=ResNet\(\.\.\.\)"):
        trainonce.load(tmp_path)


def test_training_flag_is_restored(tmp_path: Path) -> None:
    model = TiedEmbeddingLM().train()
    model.mlp.eval()  # per-module flags, not only the root's
    trainonce.save(model, tmp_path)
    loaded = trainonce.load(tmp_path)
    assert loaded.training and not loaded.mlp.training and loaded.norm1.training


def test_erased_graph_module_round_trips_through_torch_export(tmp_path: Path) -> None:
    model, inputs = build("super_residual")
    space = trainonce.analyze(model, inputs, mode="erase")
    assert space.zero_random(0.5, seed=0)
    compact = space.construct().eval()
    with pytest.raises(TrainonceError, match="example_inputs="):
        trainonce.save(compact, tmp_path)
    trainonce.save(compact, tmp_path, example_inputs=inputs)
    assert {p.name for p in tmp_path.iterdir()} == {"trainonce.json", "program.json", "model.safetensors"}
    assert json.loads((tmp_path / "trainonce.json").read_text())["kind"] == "exported_program"
    loaded = trainonce.load(tmp_path)
    assert type(loaded).__name__ == type(compact).__name__
    loaded.eval()  # a plain GraphModule: train()/eval() work
    assert_same_outputs(compact, loaded, inputs)
    batch = torch.randn(3, *inputs.shape[1:])  # the batch dimension stays dynamic
    assert torch.equal(outputs(loaded, batch)[0], outputs(compact, batch)[0])


def test_hf_model_argument_takes_the_saved_config(tmp_path: Path) -> None:
    from transformers import LlamaForCausalLM

    compact, inputs = _uniformly_pruned("hf_llama_gqa")
    trainonce.save(compact, tmp_path)
    full, _ = build("hf_llama_gqa")
    loaded = trainonce.load(tmp_path, model=LlamaForCausalLM(full.config))
    assert loaded.config.to_dict() == compact.config.to_dict()
    assert loaded.model.layers[0].self_attn.config is loaded.config
    assert_same_outputs(compact, loaded, inputs)
