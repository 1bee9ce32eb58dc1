"""HESSO contracts: schedule, exact sparsity, decay, hold, resume, base optimizers, budgets."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import pytest
import torch
from torch import nn

import trainonce
from trainonce.errors import TrainonceError
from trainonce.metrics import count_macs, count_parameters
from trainonce.optim.hesso import NOT_CHOSEN


class SmallResNet(nn.Module):
    """Stem, one residual block and a projection: three node groups of different widths."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                                   nn.Conv2d(2 * width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.head = nn.Sequential(nn.Conv2d(width, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.relu(h + self.block(h)))


def small_setup(seed: int = 0) -> tuple[nn.Module, torch.Tensor, trainonce.SearchSpace]:
    torch.manual_seed(seed)
    model = SmallResNet()
    inputs = torch.randn(2, 3, 8, 8)
    return model, inputs, trainonce.analyze(model, inputs)


def batches(seed: int = 1) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    data = [(torch.randn(4, 3, 8, 8, generator=generator), torch.randint(0, 5, (4,), generator=generator)) for _ in range(64)]
    return lambda step: data[step % len(data)]


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range, data: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
          after_step: Callable[[int], None] | None = None) -> None:
    model.train()
    for step in steps:
        x, y = data(step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if after_step is not None:
            after_step(step)
    model.eval()


def period_counts(opt: trainonce.HESSO) -> list[int]:
    period_of = opt.own_state["period_of"]
    return [int((period_of == p).sum()) for p in range(opt.schedule.periods)]


def checkpoint(model: nn.Module, opt: torch.optim.Optimizer) -> io.BytesIO:
    """Model and optimizer state in memory, saved as a training script would save them."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    return buffer


def restore(buffer: io.BytesIO, inputs: torch.Tensor,
            make: Callable[[nn.Module, trainonce.SearchSpace], torch.optim.Optimizer]) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh model and optimizer loaded from ``buffer``, as a restarted process builds them."""
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model = SmallResNet()
    model.load_state_dict(saved["model"])
    opt = make(model, trainonce.analyze(model, inputs))
    opt.load_state_dict(saved["opt"])
    return model, opt


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


BASES: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "sgd": lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
    "sgd_nesterov": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
    "adamw": lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01),
}


@pytest.mark.parametrize("base_name", sorted(BASES))
def test_every_base_reaches_exactly_k_zero_groups_and_constructs(base_name: str) -> None:
    model, inputs, space = small_setup()
    opt = trainonce.HESSO(BASES[base_name](model), space, target_sparsity=0.45, start_step=3, pruning_steps=12, periods=4)
    n = space.num_prunable
    k = int(n * 0.45)
    committed: list[bool] = []

    def state_zeroed_at_commit(step: int) -> None:  # the step a period ends: its groups' state is zeroed with them
        period, tau = divmod(step - 3, 3)
        if 0 <= period < 4 and tau == 2:
            ended = opt.own_state["period_of"] == period
            for rows in opt.index.rows:
                positions = rows.positions(ended)
                for value in opt.state[rows.param].values():
                    if isinstance(value, torch.Tensor) and value.shape == rows.param.shape:
                        assert not value.index_select(rows.dim, positions).any()
            committed.append(True)

    train(model, opt, range(20), batches(), after_step=state_zeroed_at_commit)
    assert len(committed) == 4
    assert opt.finished
    norms = opt.index.squared_norms()
    assert int((norms == 0).sum()) == k
    assert opt.metrics().num_zero_groups == k and opt.metrics().group_sparsity == k / n
    assert torch.equal(norms == 0, opt.zero_mask())
    compact = space.construct(opt.redundant())
    with torch.no_grad():
        assert torch.allclose(compact(inputs), model(inputs), atol=1e-5)
    assert count_parameters(compact) < count_parameters(model)


def test_quotas_per_period_and_remainder_in_last() -> None:
    model, _, space = small_setup()
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.01), space, target_sparsity=0.5,
                          start_step=2, pruning_steps=9, periods=4)  # L = 2: the window is steps 2..9
    k = int(space.num_prunable * 0.5)
    seen: list[list[int]] = []
    train(model, opt, range(12), batches(), after_step=lambda _: seen.append(period_counts(opt)))
    per_period = k // 4
    assert period_counts(opt) == [per_period] * 3 + [k - 3 * per_period]
    # choices happen exactly at the first step of each period
    assert [sum(c) for c in seen] == [0, 0] + [per_period] * 2 + [2 * per_period] * 2 + [3 * per_period] * 2 + [k] * 4


def test_linear_decay_to_exact_zero_with_gradients_off() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    length = 4
    opt = trainonce.HESSO(base, space, target_sparsity=0.3, start_step=1, pruning_steps=2 * length, periods=2,
                          importance={"magnitude": 1.0})
    initial = opt.index.squared_norms().sqrt()
    norms = []
    for _ in range(1 + 2 * length):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        norms.append(opt.index.squared_norms().sqrt())
    period_of = opt.own_state["period_of"]
    for period in range(2):
        chosen = period_of == period
        for tau in range(length):
            after = norms[1 + period * length + tau][chosen]
            expected = initial[chosen] * (length - tau - 1) / length
            assert torch.allclose(after, expected, rtol=1e-5, atol=1e-7), (period, tau)
        assert not norms[(period + 1) * length][chosen].any()
    untouched = period_of == NOT_CHOSEN
    assert torch.allclose(norms[-1][untouched], initial[untouched])


def test_selection_takes_the_lowest_scores_and_never_empties_a_node_group() -> None:
    model, _, space = small_setup()
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.0), space, target_sparsity=0.6, start_step=0,
                          pruning_steps=1, periods=1, importance={"magnitude": 1.0})
    norms = opt.index.squared_norms()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    chosen = opt.zero_mask()
    assert int(chosen.sum()) == int(space.num_prunable * 0.6)
    # within each node group the chosen channels are the smallest ones; one channel always survives
    for j in range(len(opt.index.node_groups)):
        members = opt.index.owner == j
        assert int((members & ~chosen).sum()) >= 1
        if (members & chosen).any() and (members & ~chosen).any():
            assert norms[members & chosen].max() <= norms[members & ~chosen].min()
    # globally: every unchosen group that could have gone (not its node group's last) scores at least the chosen max
    survivors = [j for j in range(len(opt.index.node_groups)) if int((opt.index.owner == j).sum()) > 1]
    for j in survivors:
        members = (opt.index.owner == j) & ~chosen
        if int(members.sum()) > 1:
            assert norms[members].min() >= norms[chosen].max()


def test_group_divisible_keeps_widths_multiples() -> None:
    model, _, space = small_setup()
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, target_sparsity=0.5,
                          start_step=1, pruning_steps=6, periods=3, group_divisible=4)
    train(model, opt, range(9), batches())
    chosen = opt.zero_mask()
    for j, group in enumerate(opt.index.node_groups):
        kept = int(((opt.index.owner == j) & ~chosen).sum())
        assert kept == group.size or (kept % 4 == 0 and kept >= 4), (group.name, group.size, kept)
    k = int(space.num_prunable * 0.5)
    assert k - 4 < int(chosen.sum()) <= k
    space.construct(opt.redundant())


def test_state_dict_mid_period_resumes_bit_for_bit() -> None:
    for make_base in (BASES["sgd_nesterov"], BASES["adam"]):
        model, inputs, space = small_setup()
        opt = trainonce.HESSO(make_base(model), space, target_sparsity=0.5, start_step=2, pruning_steps=12, periods=3)
        data = batches()
        train(model, opt, range(7), data)  # mid-period 2 (steps 6..9)
        buffer = checkpoint(model, opt)
        train(model, opt, range(7, 20), data)

        torch.manual_seed(123)
        resumed, opt2 = restore(buffer, inputs, lambda m, sp, mb=make_base: trainonce.HESSO(
            mb(m), sp, target_sparsity=0.5, start_step=2, pruning_steps=12, periods=3))
        assert opt2.own_state["step"] == 7
        train(resumed, opt2, range(7, 20), data)
        assert_same_weights(model, resumed)
        assert torch.equal(opt.own_state["period_of"], opt2.own_state["period_of"])

        # rolling the same optimizer back to the checkpoint (its caches must follow) resumes identically too
        final = {name: t.clone() for name, t in model.state_dict().items()}
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)  # a fresh copy: torch's load aliases state tensors
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        train(model, opt, range(7, 20), data)
        for name, t in model.state_dict().items():
            assert torch.equal(t, final[name]), name


def test_schedulers_on_base_or_wrapper_drive_the_same_lr() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = trainonce.HESSO(base, space, target_sparsity=0.3, start_step=0, pruning_steps=4, periods=2)
    scheduler = torch.optim.lr_scheduler.StepLR(base, step_size=1, gamma=0.5)
    train(model, opt, range(3), batches(), after_step=lambda _: scheduler.step())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert opt.param_groups is base.param_groups
    on_wrapper = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, range(3, 4), batches(), after_step=lambda _: on_wrapper.step())
    assert base.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**4)


@pytest.mark.parametrize("kind", ["target_params", "target_flops"])
def test_budget_targets_are_met(kind: str) -> None:
    model, inputs, space = small_setup()
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, start_step=1,
                          pruning_steps=6, periods=3, **{kind: 0.5})
    train(model, opt, range(8), batches())
    compact = space.construct(opt.redundant())
    if kind == "target_params":
        before, after = count_parameters(model), count_parameters(compact)
    else:
        before = count_macs(space.graph).total
        after = count_macs(trainonce.analyze(compact, inputs, probe=False).graph).total
    assert after <= 0.5 * before
    assert after >= 0.3 * before  # met by the smallest prefix, not by removing everything


def test_groups_of_parameters_outside_the_optimizer_are_left_alone() -> None:
    model, _, space = small_setup()
    stem_params = set(map(id, model.stem.parameters()))
    base = torch.optim.SGD([p for p in model.parameters() if id(p) not in stem_params], lr=0.05)
    opt = trainonce.HESSO(base, space, target_sparsity=0.3, start_step=0, pruning_steps=2, periods=1)
    assert any("stem" in note for note in opt.index.notes)
    assert opt.index.num_groups < space.num_prunable
    for rows in opt.index.rows:
        assert id(rows.param) not in stem_params


def test_clear_errors() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainonceError, match="pruning_steps"):
        trainonce.HESSO(base, space, 0.5, pruning_steps=3, periods=10)
    with pytest.raises(TrainonceError, match="exactly one"):
        trainonce.HESSO(base, space, 0.5, pruning_steps=10, target_flops=0.5)
    with pytest.raises(TrainonceError, match=r"in \(0, 1\)"):
        trainonce.HESSO(base, space, 1.0, pruning_steps=10)
    with pytest.raises(TrainonceError, match="unknown importance"):
        trainonce.HESSO(base, space, 0.5, pruning_steps=10, importance={"magnitude": 1.0, "gradient": 1.0})
    with pytest.raises(TrainonceError, match="at most"):
        trainonce.HESSO(base, space, 0.9, pruning_steps=10, group_divisible=8)
    with pytest.raises(TrainonceError, match=r"torch\.optim\.Optimizer"):
        trainonce.HESSO(model.parameters(), space, 0.5, pruning_steps=10)  # type: ignore[arg-type]

    flat = nn.Sequential(nn.Linear(4, 1))
    flat_space = trainonce.analyze(flat, torch.randn(2, 4))
    with pytest.raises(TrainonceError, match="no prunable group"):
        trainonce.HESSO(torch.optim.SGD(flat.parameters(), lr=0.1), flat_space, 0.5, pruning_steps=10)

    other_model, _, other_space = small_setup()
    other_model.block[0] = nn.Conv2d(12, 20, 3, padding=1)
    other_model.block[1] = nn.BatchNorm2d(20)
    other_model.block[3] = nn.Conv2d(20, 12, 3, padding=1)
    other_space = trainonce.analyze(other_model, torch.randn(2, 3, 8, 8))
    saved = trainonce.HESSO(base, space, 0.5, pruning_steps=10).state_dict()
    other = trainonce.HESSO(torch.optim.SGD(other_model.parameters(), lr=0.1), other_space, 0.5, pruning_steps=10)
    with pytest.raises(TrainonceError, match="groups but this search space"):
        other.load_state_dict(saved)
    with pytest.raises(TrainonceError, match="no HESSO state"):
        other.load_state_dict(torch.optim.SGD(other_model.parameters(), lr=0.1).state_dict())


def test_the_users_model_trains_normally_before_start_step() -> None:
    model, _, space = small_setup()
    twin = copy.deepcopy(model)
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, 0.5, start_step=5,
                          pruning_steps=5, periods=5)
    plain = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    data = batches()
    train(model, opt, range(5), data)
    train(twin, plain, range(5), data)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
