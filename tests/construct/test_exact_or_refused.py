"""Exact or refused: the failure classes random networks found, each pinned by a small model.

Every model here is judged the same way: after random zeroing, ``construct()`` either raises a
``ConstructionError`` or returns a model equal to the zeroed one on inputs construction never saw
(fresh values, another batch size). The rule-level fixes are asserted too: what a rule must
freeze is frozen, and what it may prune stays prunable.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainonce
from trainonce.construct import construct as construct_module
from trainonce.construct.verify import verify
from trainonce.errors import CaptureError, ConstructionError
from trainonce.graph.inputs import ExampleInputs


def exact_on_unseen_inputs(model: nn.Module, compact: nn.Module, example: torch.Tensor) -> None:
    """The compact model equals the (zeroed) model on fresh inputs and on batches of other sizes."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for batch in (example.shape[0], 1, example.shape[0] + 3):
            x = torch.randn((batch, *example.shape[1:]), generator=generator)
            expected, actual = model(x), compact(x)
            assert expected.shape == actual.shape
            assert torch.allclose(expected, actual, atol=1e-5 * max(1.0, float(expected.abs().max())), rtol=0)


def prune_half(model: nn.Module, example: torch.Tensor, seed: int = 0) -> tuple[trainonce.SearchSpace, nn.Module]:
    model.eval()
    space = trainonce.analyze(model, example)
    space.zero_random(0.5, seed=seed)
    return space, space.construct()


def frozen_reasons(space: trainonce.SearchSpace, module: str) -> list[str]:
    return [g.reason or "" for g in space.node_groups if not g.prunable and module in g.name]


class Head(nn.Module):
    """``body`` then a classifier, so the body's spaces do not reach the output."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body, self.head = body, nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# -- pooled, convolved-over and sliced dimensions ----------------------------------------------

class PoolFeatures(nn.Module):
    """Linear(6, 8) -> max over the 8 features -> Linear(1, 5): the 8 features must not shrink."""

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.fc, self.out, self.pool = nn.Linear(6, 8), nn.Linear(1, 5), pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        h = F.adaptive_max_pool1d(h, 1) if self.pool == "max" else F.avg_pool1d(h, 8)
        return self.out(h)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_a_pooled_feature_dimension_is_frozen(pool: str) -> None:
    model, x = PoolFeatures(pool).eval(), torch.randn(2, 6)
    space = trainonce.analyze(model, x)
    assert space.num_prunable == 0
    assert any("pooled" in reason for reason in frozen_reasons(space, "fc"))


class ConvAlongFeatures(nn.Module):
    """A Conv1d sliding along a Linear's output features, then amax: the features must not shrink."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.conv, self.out = nn.Linear(5, 8), nn.Conv1d(1, 3, 3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.fc(x).unsqueeze(1))
        return self.out(h.amax(-1))


def test_a_convolved_over_dimension_is_frozen() -> None:
    model, x = ConvAlongFeatures().eval(), torch.randn(2, 5)
    space = trainonce.analyze(model, x)
    assert any("convolved over" in reason for reason in frozen_reasons(space, "fc"))
    space.zero_random(0.5, seed=0)
    exact_on_unseen_inputs(model, space.construct(), x)


class LiteralSlices(nn.Module):
    """Channel slices at literal offsets: narrow(-1, 7, 3), h[:, 4:7] and an open-ended h[:, 2:]."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.fc, self.style = nn.Linear(4, 10), style
        self.out = nn.Linear({"narrow": 3, "middle": 3, "open": 8}[style], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        if self.style == "narrow":
            h = h.narrow(-1, 7, 3)
        elif self.style == "middle":
            h = h[:, 4:7]
        else:
            h = h[:, 2:]
        return self.out(h)


@pytest.mark.parametrize("style", ["narrow", "middle", "open"])
def test_literal_slice_offsets_freeze_the_positions_they_count(style: str) -> None:
    model, x = LiteralSlices(style).eval(), torch.randn(2, 4)
    space = trainonce.analyze(model, x)
    prunable = {g.size for g in space.prunable_groups if "fc" in g.name}
    # the positions before the start are counted by the literal offset, a closed slice counts its
    # own; positions after a closed slice are read by nothing here and stay prunable
    assert prunable == {"narrow": set(), "middle": {3}, "open": {8}}[style], space.summary()
    if space.num_prunable:
        space.zero_random(0.5, seed=0)
        exact_on_unseen_inputs(model, space.construct(), x)


def test_channel_shuffle_keeps_its_group_count() -> None:
    model = nn.Sequential(nn.Conv2d(3, 12, 1), nn.ReLU(), nn.ChannelShuffle(3), nn.Conv2d(12, 4, 1), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 2))
    x = torch.randn(2, 3, 5, 5)
    space, compact = prune_half(model, x)
    assert {g.size for g in space.prunable_groups} == {4}  # the width inside each of the 3 groups
    assert compact[2].groups == 3
    exact_on_unseen_inputs(model, compact, x)


class SharedIntoAttention(nn.Module):
    """One Linear feeds nn.MultiheadAttention's query, key and value."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(6, 8)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        return self.out(self.attention(h, h, h, need_weights=False)[0])


def test_a_group_that_breaks_alone_is_probed_alone() -> None:
    model, x = SharedIntoAttention().eval(), torch.randn(2, 4, 6)
    space = trainonce.analyze(model, x)
    pre = next(g for g in space.node_groups if g.name.startswith("pre"))
    assert not pre.prunable and "breaks the forward" in (pre.reason or "")
    for seed in range(3):
        space.zero_random(0.5, seed=seed)
        exact_on_unseen_inputs(model, space.construct(), x)


@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_conv_after_a_biased_conv_prunes(bias: bool) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=bias), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(),
                          nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    x = torch.randn(2, 3, 9, 9)
    space, compact = prune_half(model, x)
    assert any(g.name == "0, 2" and g.size == 8 for g in space.prunable_groups), space.summary()
    assert compact[2].groups == compact[2].in_channels == compact[2].out_channels == 4
    exact_on_unseen_inputs(model, compact, x)


# -- verification that cannot be fooled ---------------------------------------------------------

def test_nan_in_either_output_fails_verification() -> None:
    full = nn.Linear(4, 3)
    broken = nn.Linear(4, 3)
    broken.load_state_dict(full.state_dict())
    with torch.no_grad():
        broken.bias[1] = math.nan
    inputs = ExampleInputs.of(torch.randn(2, 4))
    verdict = verify(full, broken, inputs)
    assert not verdict.exact and "not finite" in verdict.detail
    assert not verify(broken, full, inputs).exact
    assert verify(full, full, inputs).exact


class Cheat(nn.Module):
    """Equal to ``model`` only where ``right`` says so: what a construction bug can look like."""

    def __init__(self, model: nn.Module, right: object) -> None:
        super().__init__()
        self.model, self.right = model, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out if self.right(x) else out + 0.1  # type: ignore[operator]


@pytest.mark.parametrize(("case", "where"), [("example only", "fresh random inputs"), ("batch of 2 only", "batch size 3")])
def test_a_compact_model_right_only_on_the_example_is_refused(case: str, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(2, 4)
    space = trainonce.analyze(model, x)
    space.zero_random(0.5, seed=0)
    right = (lambda v: torch.equal(v, x)) if case == "example only" else (lambda v: v.shape[0] == 2)
    build = construct_module.build_compact
    monkeypatch.setattr(construct_module, "build_compact", lambda *a, **k: Cheat(build(*a, **k), right))
    with pytest.raises(ConstructionError, match=where):
        space.construct()


def test_an_exception_inside_verification_names_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(2, 4)
    space = trainonce.analyze(model, x)
    space.zero_random(0.5, seed=0)

    def broken(*args: object, **kwargs: object) -> nn.Module:
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(construct_module, "build_compact", broken)
    with pytest.raises(ConstructionError, match=r"node group 0 \(0\).*IndexError"):
        space.construct()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_verify_with_their_own_tolerance(dtype: torch.dtype) -> None:
    from zoo import build

    model, x = build("unet_small")  # in float16 its compact model differs by 1.2e-4: rounding, not a bug
    model, x = model.to(dtype), x.to(dtype)
    space = trainonce.analyze(model, x)
    space.zero_random(0.5, seed=0)
    compact = space.construct()  # float32's 1e-5 would blame the model for bfloat16 rounding
    assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in model.parameters())


class Counting(nn.Module):
    """Counts its calls in a buffer, even in eval mode (as some EMA/statistics layers do)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("average", torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        self.calls += 1
        self.average.mul_(0.9).add_(0.1 * h.detach().mean(0))
        return self.fc2(h)


def test_construction_leaves_the_model_bit_identical() -> None:
    model, x = Counting().train(), torch.randn(2, 4)
    space = trainonce.analyze(model, x)
    space.zero_random(0.5, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    space.construct()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert flags == {name: m.training for name, m in model.named_modules()}


# -- erasing mode ----------------------------------------------------------------------------

class InPlaceAfterJoint(nn.Module):
    """``h = v1 - GroupNorm(h); relu_`` with ``v1`` read again later: erasing the GroupNorm branch
    must not let the in-place relu write into ``v1``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(2, 8))
        self.side = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v1 = self.stem(x)
        h = v1 - self.branch(v1)
        h.relu_()
        return self.head((h + self.side(v1)).mean((2, 3)))


def test_erasing_before_an_in_place_op_keeps_other_branches_intact() -> None:
    model, x = InPlaceAfterJoint().eval(), torch.randn(2, 3, 6, 6)
    space = trainonce.analyze(model, x, mode="erase")
    branch = [g for g, s in enumerate(space.erasing.candidates) if "branch" in space.erasing.segments[s].name]
    assert branch, space.summary()
    space.zero_candidates(branch)
    exact_on_unseen_inputs(model, space.construct(), x)


def test_erased_hf_models_run_at_other_batch_sizes() -> None:
    from zoo import build

    model, inputs = build("hf_bert_eager")
    space = trainonce.analyze(model, inputs, mode="erase")
    assert space.zero_random(0.5, seed=0)
    compact = space.construct()
    wider = {k: torch.cat([v, v, v]) for k, v in inputs.items()}  # three times the example's batch
    with torch.no_grad():
        expected, actual = model(**wider).logits, compact(**wider)[0]
    assert torch.allclose(actual, expected, atol=1e-5)


class AliasWrite(nn.Module):
    """``dropout(x).mul_(2)`` in eval mode writes into ``x`` through an alias the trace cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.drop = nn.Linear(4, 4), nn.Linear(4, 4), nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        g = self.b(h)
        self.drop(h).mul_(2)
        return h + g


def test_erase_mode_refuses_a_program_that_is_not_the_model() -> None:
    model = AliasWrite().eval()
    with pytest.raises(CaptureError, match="does not reproduce"):
        trainonce.analyze(model, torch.randn(2, 4), mode="erase")


class FunctionalGroupNorm(nn.Module):
    """A group normalisation whose count is a literal in the code (no num_groups attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(4, 12), nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.group_norm(self.fc(x), 3))


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_groups_prune_with_or_without_affine_parameters(affine: bool) -> None:
    model = nn.Sequential(nn.Linear(4, 12), nn.GroupNorm(3, 12, affine=affine), nn.Linear(12, 2))
    x = torch.randn(2, 4)
    space, compact = prune_half(model, x)
    assert {g.size for g in space.prunable_groups} == {3}  # whole groups of 4 channels
    assert compact[1].num_groups * 4 == compact[1].num_channels == compact[0].out_features < 12
    exact_on_unseen_inputs(model, compact, x)


def test_a_group_count_written_in_the_code_freezes_its_groups() -> None:
    model, x = FunctionalGroupNorm().eval(), torch.randn(2, 4)
    space = trainonce.analyze(model, x)
    assert space.num_prunable == 0
    assert any("not a num_groups attribute" in reason for reason in frozen_reasons(space, "fc"))


@pytest.mark.parametrize("norm", ["instance", "batch_without_running_stats"])
def test_positions_normalised_by_input_statistics_are_frozen(norm: str) -> None:
    """InstanceNorm1d over (batch, 2, features): the Linear's features are its normalised-over positions."""
    layer = nn.InstanceNorm1d(2, affine=True) if norm == "instance" else nn.BatchNorm1d(2, track_running_stats=False)
    model = nn.Sequential(nn.Linear(5, 4), layer, nn.Flatten(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 2, 5)
    space = trainonce.analyze(model, x)
    assert any("statistics of the input itself" in reason for reason in frozen_reasons(space, "0"))
    if space.num_prunable:
        space.zero_random(0.5, seed=0)
        exact_on_unseen_inputs(model, space.construct(), x)
