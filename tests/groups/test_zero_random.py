"""SearchSpace.zero_random: exact counts, per-layer spread, and ``divisible`` widths like HESSO's group_divisible."""

from __future__ import annotations

import pytest
import torch

import trainonce
from trainonce.construct.verify import max_output_difference, within_tolerance
from trainonce.errors import TrainonceError
from trainonce.groups.search_space import Redundant, SearchSpace
from zoo import build


def kept_widths(space: SearchSpace, redundant: Redundant) -> list[tuple[int, int]]:
    """(width before, width after) of every prunable node group."""
    return [(g.size, g.size - len(redundant.get(g.id, ()))) for g in space.prunable_groups]


@pytest.fixture(scope="module")
def resnet18() -> tuple[SearchSpace, dict[str, torch.Tensor]]:
    model, inputs = build("resnet18_cifar")
    space = trainonce.analyze(model, inputs)
    return space, {k: v.clone() for k, v in model.state_dict().items()}


def test_default_zeroes_exactly_the_fraction_and_every_layer_about_as_much(resnet18: tuple[SearchSpace, dict]) -> None:
    space, saved = resnet18
    space.model.load_state_dict(saved)
    redundant = space.zero_random(0.5, seed=1)
    assert sum(len(v) for v in redundant.values()) == int(space.num_prunable * 0.5)
    for width, kept in kept_widths(space, redundant):
        assert 1 <= kept <= width
        assert abs((width - kept) / width - 0.5) < 0.15, (width, kept)  # every node group has >= 64 channels
    assert {gid: idx.tolist() for gid, idx in redundant.items()} == {
        gid: idx.tolist() for gid, idx in space.redundant_from_zeros().items()}


@pytest.mark.parametrize("divisible", [8, 16])
@pytest.mark.parametrize("fraction", [0.5, 0.7])
def test_divisible_keeps_multiples_and_about_the_fraction(resnet18: tuple[SearchSpace, dict], divisible: int,
                                                           fraction: float) -> None:
    space, saved = resnet18
    space.model.load_state_dict(saved)
    redundant = space.zero_random(fraction, seed=0, divisible=divisible)
    for width, kept in kept_widths(space, redundant):
        assert kept % divisible == 0 and kept >= divisible, (width, kept)
    removed = sum(len(v) for v in redundant.values())
    assert fraction - 0.02 <= removed / space.num_prunable <= fraction  # blocks of `divisible` may fall short, never over


def test_divisible_leaves_narrow_groups_whole_and_constructs_exactly() -> None:
    """MobileNetV2 x0.35 has node groups of 8..112 channels (depthwise convs among them)."""
    model, inputs = build("mobilenetv2_small")
    space = trainonce.analyze(model, inputs)
    redundant = space.zero_random(0.5, seed=0, divisible=16)
    widths = kept_widths(space, redundant)
    assert any(width <= 16 for width, _ in widths), "the test needs node groups no wider than divisible"
    for width, kept in widths:
        if width <= 16:
            assert kept == width
        else:
            assert kept % 16 == 0 and kept >= 16, (width, kept)
    compact = space.construct()  # verifies itself; checked again here
    assert within_tolerance(*max_output_difference(model, compact, space.inputs))
    convs = [m for m in compact.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1]
    assert any(m.out_channels != m.in_channels for m in convs)


def test_same_seed_same_choice_and_bad_arguments(resnet18: tuple[SearchSpace, dict]) -> None:
    space, saved = resnet18
    runs = []
    for _ in range(2):
        space.model.load_state_dict(saved)
        runs.append(space.zero_random(0.3, seed=5, divisible=8))
    assert runs[0].keys() == runs[1].keys() and all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    space.model.load_state_dict(saved)
    with pytest.raises(TrainonceError, match="divisible"):
        space.zero_random(0.5, divisible=0)
    with pytest.raises(TrainonceError, match="fraction"):
        space.zero_random(1.0)


def test_erase_mode_refuses_divisible() -> None:
    model, inputs = build("super_residual")
    space = trainonce.analyze(model, inputs, mode="erase")
    with pytest.raises(TrainonceError, match="divisible must be 1"):
        space.zero_random(0.5, divisible=8)
