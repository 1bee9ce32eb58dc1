"""Every zoo model: random 30/50/70% zeroing -> construct -> exact output, fewer parameters."""

from __future__ import annotations

import pytest
import torch

import trainonce
from zoo import ZOO, build

FAST = sorted(name for name, entry in ZOO.items() if "slow" not in entry.tags)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("name", FAST)
def test_zeroed_groups_construct_to_an_exact_smaller_model(name: str, fraction: float) -> None:
    model, inputs = build(name)
    space = trainonce.analyze(model, inputs)
    assert space.num_prunable > 0, f"{name}: nothing prunable\n{space.summary()}"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    redundant = space.zero_random(fraction, seed=7)
    assert sum(len(v) for v in redundant.values()) > 0
    zeroed = {k: v.clone() for k, v in model.state_dict().items()}
    compact = space.construct()  # raises if outputs differ beyond 1e-5 * max(1, |out|)
    assert _params(compact) < _params(model)
    # the user's (zeroed) model is untouched by construction
    for key, value in model.state_dict().items():
        assert torch.equal(value, zeroed[key]), key
    assert set(before) == set(zeroed)


def test_resnet18_cifar_reference_counts() -> None:
    model, inputs = build("resnet18_cifar")
    space = trainonce.analyze(model, inputs)
    assert space.num_prunable == 2880
    assert _params(model) == 11_173_962
    assert len(space.prunable_groups) == 12
    # the classifier's output channels reach the model output: frozen
    frozen = [g for g in space.node_groups if not g.prunable]
    assert any("reaches a model output" in (g.reason or "") for g in frozen)


@pytest.mark.parametrize("name", ["lstm_model", "gru_model", "custom_op_model"])
def test_unknown_ops_are_frozen_not_corrupted(name: str) -> None:
    model, inputs = build(name)
    space = trainonce.analyze(model, inputs)
    assert space.propagation.unknown_ops, "the recurrent/custom op must be unknown"
    unknown_modules = {n.module for n in space.graph.nodes if n.op in space.propagation.unknown_ops}
    for group in space.prunable_groups:
        for piece in [*group.producers, *group.consumers]:
            owner = piece.value.label.rpartition(".")[0]
            assert not any(owner == m or owner.startswith(m + ".") for m in unknown_modules if m), (name, owner)
    space.zero_random(0.5, seed=0)
    with torch.no_grad():
        expected = model(inputs)
    compact = space.construct()
    with torch.no_grad():
        assert torch.allclose(compact(inputs), expected, atol=1e-5)
    for module_name in unknown_modules:
        if module_name:
            original = dict(model.named_modules())[module_name]
            rebuilt = dict(compact.named_modules())[module_name]
            for (k, a), (_, b) in zip(original.named_parameters(), rebuilt.named_parameters(), strict=True):
                assert torch.equal(a, b), k


def test_grouped_query_attention_ties_kv_heads_to_query_heads() -> None:
    model, inputs = build("hf_llama_gqa")
    space = trainonce.analyze(model, inputs)
    config = model.config
    head_groups = [g for g in space.prunable_groups if any("q_proj" in n for p in g.producers for n in p.value.fqns)]
    assert len(head_groups) == config.num_hidden_layers
    for group in head_groups:
        assert group.size == config.num_key_value_heads  # one group = one kv head + its query heads
        q_slice = next(p for p in group.producers if "q_proj" in p.value.label)
        per_group = int((q_slice.index == 0).sum())
        assert per_group == config.num_attention_heads // config.num_key_value_heads * config.head_dim


def test_fused_qkv_heads_prune_q_k_v_together() -> None:
    model, inputs = build("vit_small_eager")
    space = trainonce.analyze(model, inputs)
    heads = [g for g in space.prunable_groups if any(p.value.label.endswith("qkv.weight") for p in g.producers)]
    assert heads and all(g.size == 4 for g in heads)
    qkv = next(p for p in heads[0].producers if p.value.label.endswith("qkv.weight"))
    assert int((qkv.index == 0).sum()) == 3 * 16  # q, k and v rows of head 0


def test_timm_style_attention_output_reshape_freezes_heads_not_the_mlp() -> None:
    """`reshape(B, N, C)` with the residual width C: head removal cannot be constructed."""
    model, inputs = build("vit_small")
    space = trainonce.analyze(model, inputs)
    heads = [g for g in space.node_groups if g.size == 4 and any(p.value.label.endswith("qkv.weight") for p in g.producers)]
    assert heads and all(not g.prunable and "breaks the forward" in (g.reason or "") for g in heads)
    assert any(any("fc1" in p.value.label for p in g.producers) for g in space.prunable_groups)


def test_depthwise_conv_channels_tie_to_their_producer() -> None:
    model, inputs = build("mobilenetv2_small")
    space = trainonce.analyze(model, inputs)
    for group in space.prunable_groups:
        labels = [p.value.label for p in group.producers]
        depthwise = [lbl for lbl in labels if lbl.endswith("weight") and dict(model.named_parameters())[lbl].ndim == 4
                     and dict(model.named_parameters())[lbl].shape[1] == 1]
        if depthwise:
            assert len([lbl for lbl in labels if dict(model.named_parameters())[lbl].ndim == 4]) >= 2


def test_excluded_modules_are_not_pruned() -> None:
    model, inputs = build("resnet18_imagenet_small")
    space = trainonce.analyze(model, inputs, exclude=("layer1",))
    for group in space.prunable_groups:
        assert not any(p.value.label.startswith("layer1.") for p in group.producers)
    assert any("excluded by the user" in (g.reason or "") for g in space.node_groups)
