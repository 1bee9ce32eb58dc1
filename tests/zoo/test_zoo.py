"""Every zoo entry builds, runs, produces finite outputs and exports with
torch.export(strict=False) to a graph that reproduces the eager outputs."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import pytest
import torch
import torch.nn as nn
from torch.utils._pytree import tree_leaves

from zoo import ZOO, ZooEntry, build
from zoo.init import is_norm_like, randomize_norms

REFERENCE_PARAMS = {
    "resnet18_cifar": 11_173_962,
    "resnet50_cifar": 23_520_842,
    "vgg16_bn": 15_253_578,
}


def _names() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.slow) if "slow" in entry.tags else name
        for name, entry in ZOO.items()
    ]


def split_inputs(inputs: Any) -> tuple[tuple, dict]:
    """Example inputs -> (args, kwargs): dict = kwargs, tuple = args, tensor = 1-tuple."""
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


def tensor_leaves(out: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]


def test_registry_interface() -> None:
    assert len(ZOO) >= 40
    for name, entry in ZOO.items():
        assert isinstance(entry, ZooEntry)
        assert entry.name == name
        assert isinstance(entry.tags, frozenset) and entry.tags
        assert entry.description
    for name in REFERENCE_PARAMS:
        assert "reference" in ZOO[name].tags


@pytest.mark.filterwarnings("ignore:The tensor attributes self.rnn._flat_weights")  # benign, nn.LSTM/GRU
@pytest.mark.parametrize("name", _names())
def test_forward_and_export(name: str) -> None:
    model, inputs = build(name)
    assert not model.training
    args, kwargs = split_inputs(inputs)
    assert all(isinstance(t, torch.Tensor) for t in (*args, *kwargs.values()))
    with torch.no_grad():
        eager = tensor_leaves(model(*args, **kwargs))
    assert eager and all(torch.isfinite(t).all() for t in eager)

    ep = torch.export.export(model, args, kwargs, strict=False)
    with torch.no_grad():
        exported = tensor_leaves(ep.module()(*args, **kwargs))
    assert len(exported) == len(eager)
    for a, b in zip(eager, exported, strict=False):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,expected", [
    pytest.param(n, c, marks=pytest.mark.slow) if "slow" in ZOO[n].tags else (n, c)
    for n, c in REFERENCE_PARAMS.items()
])
def test_reference_param_counts(name: str, expected: int) -> None:
    model, _ = build(name)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", _names())
def test_deterministic_and_nontrivial_norms(name: str) -> None:
    model, inputs = build(name)
    model2, inputs2 = build(name)
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items(), strict=False):
        assert torch.equal(a, b), k
    for a, b in zip(tree_leaves(inputs), tree_leaves(inputs2), strict=False):
        assert torch.equal(a, b)

    for mod_name, m in model.named_modules():
        running_var = getattr(m, "running_var", None)
        if isinstance(running_var, torch.Tensor):
            assert not torch.allclose(running_var, torch.ones_like(running_var)), mod_name
        if is_norm_like(m) and isinstance(getattr(m, "weight", None), torch.Tensor):
            w = m.weight
            assert not torch.allclose(w, torch.ones_like(w)), mod_name
            assert ((w >= 0.5) & (w <= 1.5)).all(), mod_name


def test_randomize_norms_covers_norm_types() -> None:
    class RMSNormLike(nn.Module):  # a hand-written norm, recognised by name + 1-D weight
        def __init__(self, d: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

    model = nn.ModuleList([
        nn.BatchNorm2d(8), nn.BatchNorm1d(8), nn.GroupNorm(2, 8), nn.LayerNorm(8),
        nn.InstanceNorm2d(8, affine=True), nn.InstanceNorm2d(8), nn.RMSNorm(8), RMSNormLike(8),
        nn.Linear(8, 8),
    ])
    linear_before = model[-1].weight.detach().clone()
    randomize_norms(model, seed=1)
    for m in model[:-1]:
        if m.weight is not None:
            assert ((m.weight >= 0.5) & (m.weight <= 1.5)).all()
            assert not torch.allclose(m.weight, torch.ones(8))
        if getattr(m, "bias", None) is not None:
            assert m.bias.abs().max() > 0
    assert ((model[0].running_var >= 0.5) & (model[0].running_var <= 1.5)).all()
    assert model[0].running_mean.abs().max() > 0
    assert torch.equal(model[-1].weight, linear_before)  # non-norm layers untouched


def test_layer_scale_init() -> None:
    model, _ = build("convnext_small")
    gammas = [p for n, p in model.named_parameters() if n.endswith("gamma")]
    assert gammas and all(((g >= 0.5) & (g <= 1.5)).all() for g in gammas)


def test_tied_weights_are_shared() -> None:
    model, _ = build("tied_embedding")
    assert model.head.weight is model.embed.weight
    model, _ = build("hf_gpt2")
    assert model.lm_head.weight is model.transformer.wte.weight
    model, _ = build("hf_llama_gqa")
    assert model.lm_head.weight is not model.model.embed_tokens.weight


def test_hf_config_helpers() -> None:
    from zoo.hf import bert_base_config, llama_config

    cfg = llama_config(32, 4096, 32, 32, 11008, 32000)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (32, 4096, 32)
    assert (cfg.num_key_value_heads, cfg.intermediate_size, cfg.vocab_size) == (32, 11008, 32000)
    assert cfg.use_cache is False and cfg.tie_word_embeddings is False
    bert = bert_base_config()
    assert (bert.hidden_size, bert.num_hidden_layers, bert.num_attention_heads, bert.intermediate_size) == (768, 12, 12, 3072)


@pytest.mark.parametrize("depth,expected", [(18, 11_689_512), (50, 25_557_032), (152, 60_192_808)])
def test_imagenet_resnets_match_torchvision_param_counts(depth: int, expected: int) -> None:
    """The scaling benchmark's ResNets are torchvision's (its published parameter counts)."""
    from zoo.resnet import resnet_imagenet

    model, inputs = resnet_imagenet(depth, size=32)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert tuple(inputs.shape) == (1, 3, 32, 32)


def test_custom_op_in_exported_graph() -> None:
    model, x = build("custom_op_model")
    ep = torch.export.export(model, (x,), strict=False)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "zoo.channel_mix.default" in targets
