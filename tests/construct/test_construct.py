"""Construction contracts: explicit redundant sets, mismatches, widths, idempotence."""

from __future__ import annotations

import pytest
import torch

import trainonce
from trainonce.errors import ConstructionError
from zoo import build


def test_explicit_redundant_set_must_match_zero_weights() -> None:
    model, inputs = build("resnet18_imagenet_small")
    space = trainonce.analyze(model, inputs)
    group = space.prunable_groups[0]
    with pytest.raises(ConstructionError, match="not exactly zero"):
        space.construct({group.id: torch.tensor([0, 1])})
    space.zero_groups({group.id: torch.tensor([0, 1])})
    compact = space.construct({group.id: torch.tensor([0, 1])})
    assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in model.parameters())


def test_nothing_zero_gives_an_equal_copy() -> None:
    model, inputs = build("audio_conv1d")
    compact = trainonce.analyze(model, inputs).construct()
    assert compact is not model
    for (name, a), (_, b) in zip(model.state_dict().items(), compact.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
        assert a.data_ptr() != b.data_ptr()


def test_a_whole_node_group_cannot_be_removed() -> None:
    model, inputs = build("resnet18_imagenet_small")
    space = trainonce.analyze(model, inputs)
    group = space.prunable_groups[0]
    everything = torch.arange(group.size)
    space.zero_groups({group.id: everything})
    with pytest.raises(ConstructionError, match="would lose all"):
        space.construct({group.id: everything})


def test_width_attributes_follow_the_slices() -> None:
    model, inputs = build("resnext_small")
    space = trainonce.analyze(model, inputs)
    space.zero_random(0.5, seed=3)
    compact = space.construct()
    for module in compact.modules():
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight
            assert module.out_channels == w.shape[0]
            assert module.in_channels == w.shape[1] * module.groups
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.num_features == module.weight.shape[0] == module.running_mean.shape[0]
        if isinstance(module, torch.nn.Linear):
            assert (module.out_features, module.in_features) == tuple(module.weight.shape)


def test_hf_config_driven_attention_still_runs_after_head_pruning() -> None:
    model, inputs = build("hf_bert")
    space = trainonce.analyze(model, inputs)
    heads = [g for g in space.prunable_groups if any("query" in p.value.label for p in g.producers)]
    assert heads, space.summary()
    redundant = {g.id: torch.tensor([0]) for g in heads}
    space.zero_groups(redundant)
    compact = space.construct(redundant)
    attention = [m for m in compact.modules() if hasattr(m, "num_attention_heads") and hasattr(m, "query")]
    assert attention and all(m.num_attention_heads == model.config.num_attention_heads - 1 for m in attention)


def test_hf_config_follows_uniform_pruning() -> None:
    model, inputs = build("hf_llama_gqa")
    space = trainonce.analyze(model, inputs)
    config = model.config
    mlp = [g for g in space.prunable_groups if g.size == config.intermediate_size]
    heads = [g for g in space.prunable_groups if g.size == config.num_key_value_heads]
    assert len(mlp) == len(heads) == config.num_hidden_layers
    redundant = {g.id: torch.arange(32) for g in mlp} | {g.id: torch.tensor([1]) for g in heads}
    space.zero_groups(redundant)
    compact = space.construct(redundant)
    assert compact.config.intermediate_size == config.intermediate_size - 32
    assert compact.config.num_key_value_heads == config.num_key_value_heads - 1
    ratio = config.num_attention_heads // config.num_key_value_heads
    assert compact.config.num_attention_heads == ratio * (config.num_key_value_heads - 1)
    assert model.config.intermediate_size == config.intermediate_size  # the user's config untouched


def zeros_by_norms(space: trainonce.SearchSpace) -> dict[int, torch.Tensor]:
    """The reference definition: channels whose float64 group norm is exactly zero."""
    return {gid: torch.nonzero(norm == 0).squeeze(1) for gid, norm in space.group_norms().items()
            if bool((norm == 0).any())}


@pytest.mark.parametrize("name", ["resnext_small", "hf_llama_gqa"])
def test_zero_channels_agree_with_the_group_norms(name: str) -> None:
    """Construction finds the zero channels without float64 norms; the answer must not change,
    also where a channel holds only a denormal or a NaN (not zero) or -0.0 (zero)."""
    from trainonce.construct.plan import zero_channels

    model, inputs = build(name)
    space = trainonce.analyze(model, inputs)
    space.zero_random(0.5, seed=1)
    expected = zeros_by_norms(space)
    odd = [g for g in space.prunable_groups if g.id in expected][:3]
    with torch.no_grad():
        for group, value in zip(odd, (1e-45, float("nan"), -0.0), strict=False):
            channel = int(expected[group.id][0])
            piece = group.producers[0]
            piece.tensor.select(piece.dim, int(torch.nonzero(piece.index == channel)[0])).view(-1)[0] = value
    expected = zeros_by_norms(space)
    found = zero_channels(space.node_groups)
    assert found.keys() == expected.keys()
    assert all(torch.equal(found[k], expected[k]) for k in expected)
    assert sum(len(v) for v in found.values()) > 0
    redundant = space.redundant_from_zeros()  # the public method answers the same
    assert redundant.keys() == expected.keys() and all(torch.equal(redundant[k], expected[k]) for k in expected)
