"""Erasing mode: segments, GeZIGs, validity rules, hierarchical selection, construction."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import trainonce
from trainonce.construct.verify import max_output_difference, within_tolerance
from trainonce.errors import ConstructionError, TrainonceError
from trainonce.groups.segments import SegmentKind
from trainonce.metrics.macs import count_macs
from zoo import ZOO, build

SUPERNETS = ["darts_supernet", "stacked_unets", "super_residual", "deep_plain_residual"]


def ops(module: fx.GraphModule) -> int:
    """ATen ops of a graph (tuple unpacking by ``getitem`` is not an op, nor counted in the IR)."""
    return sum(1 for n in module.graph.nodes if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload))


def macs_of(module: nn.Module, inputs: object) -> int:
    from trainonce.graph.capture import capture

    return count_macs(capture(module, inputs)[0]).total


def erased_names(space: trainonce.ErasingSpace) -> list[str]:
    return [space.erasing.segments[s].name for s in space.erasing.candidates]


# -- segments and GeZIGs -----------------------------------------------------------------------

def test_resnet18_bodies_and_downsamples_are_the_erasable_segments() -> None:
    model, x = build("resnet18_cifar")
    space = trainonce.analyze(model, x, mode="erase")
    names = erased_names(space)
    assert space.num_prunable == len(names) == 11  # 8 block bodies + 3 downsample shortcuts
    assert sum("downsample" in n for n in names) == 3
    reasons = {s.name: s.reason for s in space.erasing.segments if s.kind is SegmentKind.CHAIN and not s.erasable and s.parameters}
    assert "not an add/concat joint" in reasons["conv1 .. relu"]  # the stem feeds a conv
    assert any("model output" in r for r in reasons.values() if r)


class Gated(nn.Module):
    """Branches whose zeroed output is not zero (sigmoid, + 1, affine-free eval BN) and one that is."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.sig = nn.Conv2d(8, 8, 1)
        self.shift = nn.Conv2d(8, 8, 1)
        self.bn = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8, affine=False))
        self.good = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return h + torch.sigmoid(self.sig(h)) + (self.shift(h) + 1.0) + self.bn(h) + self.good(h)


def test_zero_invariance_is_proven_op_by_op() -> None:
    model = Gated().eval()
    model.bn[1].running_mean.uniform_(0.5, 1.0)
    space = trainonce.analyze(model, torch.randn(1, 3, 8, 8), mode="erase")
    by_name = {s.name: s for s in space.erasing.segments if s.kind is SegmentKind.CHAIN}
    assert by_name["good.0 .. good.2"].erasable
    for name in ("sig", "shift", "bn.0 .. bn.1"):
        assert not by_name[name].erasable and "not zero-invariant" in (by_name[name].reason or ""), name


# -- validity and hierarchical selection -----------------------------------------------------------

class TwoBranches(nn.Module):
    """out = a(x) + b(x): either branch may go, never both (the joint would lose every operand)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.b = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.a(x) + self.b(x)))


def test_plain_top_k_would_disconnect_but_hierarchical_selection_does_not() -> None:
    space = trainonce.analyze(TwoBranches().eval(), torch.randn(1, 3, 8, 8), mode="erase")
    erasing = space.erasing
    assert space.num_prunable == 2
    assert not erasing.valid(set(erasing.candidates))  # top-2 would remove both operands of the add
    assert erasing.select([1, 0], limit=2) == [1]
    with pytest.raises(ConstructionError, match="disconnect"):
        space.zero_candidates([0, 1])
        space.construct()


class TwoInputs(nn.Module):
    """out = f(x) + g(y): erasing either branch cuts an input off the output (rule R2)."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(6, 6)
        self.g = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.f(x) + self.g(y)


def test_every_input_stays_connected_to_every_output() -> None:
    space = trainonce.analyze(TwoInputs(), (torch.randn(2, 6), torch.randn(2, 6)), mode="erase")
    assert space.num_prunable == 2
    assert all(not space.erasing.valid({c}) for c in space.erasing.candidates)
    assert space.erasing.select([0, 1]) == []


@pytest.mark.parametrize("name", SUPERNETS)
def test_any_subset_of_an_accepted_set_constructs_exactly(name: str) -> None:
    model, x = build(name)
    space = trainonce.analyze(model, x, mode="erase")
    erasing = space.erasing
    order = torch.randperm(space.num_prunable, generator=torch.Generator().manual_seed(0)).tolist()
    accepted = erasing.select(order)  # as many as the rules allow
    assert accepted and erasing.valid({erasing.candidates[g] for g in accepted})
    original = {k: v.clone() for k, v in model.state_dict().items()}
    full_ops, full_macs = len(space.graph.nodes), macs_of(model, x)
    generator = torch.Generator().manual_seed(1)
    for trial in range(2):
        model.load_state_dict(original)
        subset = [g for g in accepted if torch.rand(1, generator=generator).item() < 0.6] or accepted[:1]
        space.zero_candidates(subset)
        compact = space.construct()
        diff, scale = max_output_difference(model, compact, space.inputs)
        assert within_tolerance(diff, scale), (name, trial, diff)
        assert ops(compact) < full_ops
        assert macs_of(compact, x) < full_macs
        assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in model.parameters())


def test_compact_runs_at_other_batch_sizes_and_leaves_the_model_alone() -> None:
    model, x = build("super_residual")
    space = trainonce.analyze(model, x, mode="erase")
    space.zero_random(0.5, seed=3)
    before = {k: (v.data_ptr(), v.clone()) for k, v in model.state_dict().items()}
    compact = space.construct()
    batch = torch.randn(5, *x.shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(compact(batch), model(batch), atol=1e-5, rtol=1e-5)
    for key, (pointer, value) in before.items():
        tensor = model.state_dict()[key]
        assert tensor.data_ptr() == pointer and torch.equal(tensor, value), key
    assert all(p.data_ptr() not in {ptr for ptr, _ in before.values()} for p in compact.parameters())


def test_concat_slices_are_dropped_with_their_followers() -> None:
    model, x = build("stacked_unets")
    space = trainonce.analyze(model, x, mode="erase")
    slicing = [g for g, s in enumerate(space.erasing.candidates) if space.erasing.segments[s].cat_atoms]
    assert slicing, "the up-convolutions feed concats"
    space.zero_candidates(slicing[:1])
    compact = space.construct()
    widths = {n: p.shape for n, p in compact.named_parameters()}
    full = dict(model.named_parameters())
    assert any(full[n].shape != shape for n, shape in widths.items() if n in full), "a consumer lost its input slice"


@pytest.mark.parametrize("name", [e.name for e in ZOO.values() if "slow" not in e.tags])
def test_zoo_random_erasing_constructs_exactly(name: str) -> None:
    model, x = build(name)
    space = trainonce.analyze(model, x, mode="erase")
    erased = space.zero_random(0.5, seed=0)
    compact = space.construct()  # verifies exactness itself
    diff, scale = max_output_difference(model, compact, space.inputs)
    assert within_tolerance(diff, scale)
    if erased:
        assert ops(compact) < len(space.graph.nodes)


# -- reporting and errors ------------------------------------------------------------------------

def test_summary_and_render(tmp_path: Path) -> None:
    model, x = build("super_residual")
    space = trainonce.analyze(model, x, mode="erase")
    text = space.summary()
    assert f"erasable (GeZIGs) N = {space.num_prunable}" in text and "not an add/concat joint" in text
    space.zero_random(0.3, seed=0)
    dot = Path(space.render(str(tmp_path / "graph.dot"))).read_text()
    assert dot.count("->") == sum(len(s.succs) for s in space.erasing.segments)
    assert "#f4a6a6" in dot  # erased segments drawn in red
    if shutil.which("dot"):
        svg = Path(space.render(str(tmp_path / "graph.svg"))).read_text()
        assert "<svg" in svg


def test_errors() -> None:
    model, x = build("deep_plain_residual")
    with pytest.raises(TrainonceError, match="mode must be"):
        trainonce.analyze(model, x, mode="delete")
    space = trainonce.analyze(model, x, mode="erase")
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainonceError, match="H2SPG"):
        trainonce.DHSPG(base, space, 0.5, pruning_steps=10)
    with pytest.raises(TrainonceError, match="H2SPG"):
        trainonce.HESSOCRIC(base, space, 0.5, sampling_steps=2, hybrid_steps=2)
    with pytest.raises(TrainonceError, match="mode='erase'"):
        trainonce.H2SPG(base, trainonce.analyze(model, x), target_sparsity=0.5, pruning_steps=10)
    with pytest.raises(TrainonceError, match="svg"):
        space.render("graph.txt")


def test_pairs_are_checked_exhaustively_on_a_small_net() -> None:
    """Every valid subset of the deep plain residual net's blocks constructs (exhaustive over pairs)."""
    model, x = build("deep_plain_residual")
    space = trainonce.analyze(model, x, mode="erase")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    for pair in itertools.combinations(range(space.num_prunable), 2):
        if pair[0] % 4 or pair[1] % 5:  # a spread sample of the pairs keeps it fast
            continue
        model.load_state_dict(original)
        space.zero_candidates(list(pair))
        space.construct()
