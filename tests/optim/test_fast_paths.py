"""The vectorised step paths of ``GroupSparseOptimizer`` against plain per-parameter references.

``multiply`` (cached per-position multipliers, one ``_foreach_mul_``) must give bit for bit what
multiplying each parameter by its float64 factors cast to its dtype gives, optimizer state
included; a whole HESSO run must equal a plain base optimizer plus that reference schedule;
``step_sums`` (blocked reductions) must match float64 sums taken directly; and the scratch
buffer must be one copy of the grouped parameters, freed once no step measures directions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import trainonce
from trainonce.optim import Penalty
from trainonce.optim.group_index import ParamRows
from trainonce.optim.hesso import NOT_CHOSEN
from trainonce.optim.sparse import GroupSparseOptimizer

from .test_hesso import BASES, batches, small_setup, train

Factory = Callable[[nn.Module], torch.optim.Optimizer]
BASES_WITH_STATE = {name: BASES[name] for name in ("sgd_nesterov", "adam", "adamw")}


def reference_multiply(opt: GroupSparseOptimizer, factors: torch.Tensor, with_state: bool) -> None:
    """The plain version: each parameter times its per-position float64 factors cast to its dtype."""
    with torch.no_grad():
        for rows in opt.index.rows:
            per_position = torch.where(rows.gid >= 0, factors[rows.gid.clamp(min=0)], 1.0)
            if bool((per_position == 1).all()):
                continue
            shape = [1] * rows.param.ndim
            shape[rows.dim] = -1
            multiplier = per_position.to(rows.param.dtype).view(shape)
            rows.param.mul_(multiplier)
            if with_state:
                for value in opt.state[rows.param].values():
                    if isinstance(value, torch.Tensor) and value.shape == rows.param.shape:
                        value.mul_(multiplier)


def trained_pair(make_base: Factory) -> tuple[tuple[nn.Module, trainonce.HESSO], tuple[nn.Module, trainonce.HESSO]]:
    """Two identical models with HESSO after a few plain steps (so the base state exists)."""
    pairs = []
    for _ in range(2):
        model, _, space = small_setup()
        opt = trainonce.HESSO(make_base(model), space, target_sparsity=0.5, start_step=100, pruning_steps=10, periods=2)
        train(model, opt, range(3), batches())
        pairs.append((model, opt))
    return pairs[0], pairs[1]


def assert_same_models_and_states(a: tuple[nn.Module, torch.optim.Optimizer], b: tuple[nn.Module, torch.optim.Optimizer]) -> None:
    for (name, x), (_, y) in zip(a[0].state_dict().items(), b[0].state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    for p, q in zip(a[0].parameters(), b[0].parameters(), strict=True):
        for key, value in a[1].state[p].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[1].state[q][key]), key


@pytest.mark.parametrize("base_name", sorted(BASES_WITH_STATE))
def test_multiply_equals_the_per_parameter_reference_bit_for_bit(base_name: str) -> None:
    fast, slow = trained_pair(BASES_WITH_STATE[base_name])
    n = fast[1].index.num_groups
    generator = torch.Generator().manual_seed(0)
    for factor, with_state in [(0.75, False), (0.5, False), (0.0, True), (1 / 3, True)]:
        zero = torch.rand(n, generator=generator) < 0.3
        scaled = (torch.rand(n, generator=generator) < 0.3) & ~zero
        fast[1].multiply(zero, scaled, factor, with_state=with_state)
        factors = torch.ones(n, dtype=torch.float64)
        factors[scaled] = factor
        factors[zero] = 0.0
        reference_multiply(slow[1], factors, with_state)
        assert_same_models_and_states(fast, slow)
    # the same pattern again with a new factor reuses the cache and rewrites only the factor
    fast[1].multiply(zero, scaled, 0.25)
    factors[scaled] = 0.25
    reference_multiply(slow[1], factors, False)
    assert_same_models_and_states(fast, slow)


def test_a_parameter_indexed_along_two_dimensions_is_multiplied_along_both() -> None:
    """One ``_foreach_mul_`` must not hold a tensor twice: the second dimension goes in a second round."""
    fast, slow = trained_pair(BASES["sgd_nesterov"])
    for _, opt in (fast, slow):
        conv = next(rows for rows in opt.index.rows if rows.param.ndim == 4)
        columns = torch.arange(conv.param.shape[1]) % opt.index.num_groups
        opt.index.rows.append(ParamRows(conv.param, 1, columns))
        opt._buckets = opt._make_buckets()
    n = fast[1].index.num_groups
    generator = torch.Generator().manual_seed(1)
    zero = torch.rand(n, generator=generator) < 0.3
    scaled = (torch.rand(n, generator=generator) < 0.3) & ~zero
    fast[1].multiply(zero, scaled, 0.5, with_state=True)
    factors = torch.where(zero, 0.0, torch.where(scaled, 0.5, 1.0)).double()
    reference_multiply(slow[1], factors, with_state=True)
    assert_same_models_and_states(fast, slow)


def reference_hesso(model: nn.Module, base: torch.optim.Optimizer, period_of: torch.Tensor, opt: trainonce.HESSO,
                    steps: int) -> None:
    """The HESSO schedule written out: base step, then decay the period's groups, hold earlier ones at zero."""
    schedule = opt.schedule
    data = batches()
    model.train()
    for step in range(steps):
        x, y = data(step)
        base.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        base.step()
        if step < schedule.start:
            continue
        phase = schedule.phase(step)
        period = phase[0] if phase is not None else schedule.periods
        factors = torch.ones(opt.index.num_groups, dtype=torch.float64)
        factors[(period_of != NOT_CHOSEN) & (period_of < period)] = 0.0
        commit = False
        if phase is not None:
            factor = (schedule.length - phase[1] - 1) / (schedule.length - phase[1])
            factors[period_of == period] = factor
            commit = factor == 0.0
        reference_multiply(_on(opt, model, base), factors, with_state=commit)


def _on(opt: trainonce.HESSO, model: nn.Module, base: torch.optim.Optimizer) -> GroupSparseOptimizer:
    """``opt``'s group index, re-pointed at ``model``'s parameters and ``base``'s state."""
    mapping = dict(zip(map(id, opt.space.model.parameters()), model.parameters(), strict=True))
    view = GroupSparseOptimizer.__new__(GroupSparseOptimizer)
    view.state = base.state
    view.index = type(opt.index).__new__(type(opt.index))
    view.index.num_groups = opt.index.num_groups
    view.index.rows = [type(rows)(mapping[id(rows.param)], rows.dim, rows.gid) for rows in opt.index.rows]
    return view


@pytest.mark.parametrize("base_name", sorted(BASES_WITH_STATE))
def test_hesso_equals_the_written_out_schedule_bit_for_bit(base_name: str) -> None:
    """Selection aside (taken from the run), every weight and state value matches the plain reference."""
    make_base = BASES_WITH_STATE[base_name]
    model, _, space = small_setup()
    twin, _, _ = small_setup()
    opt = trainonce.HESSO(make_base(model), space, target_sparsity=0.45, start_step=3, pruning_steps=12, periods=4)
    steps = 20
    train(model, opt, range(steps), batches())
    base = make_base(twin)
    reference_hesso(twin, base, opt.own_state["period_of"], opt, steps)
    assert_same_models_and_states((model, opt), (twin, base))


def direct_sums(opt: GroupSparseOptimizer, before: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The step sums in float64, straight from per-position matrices."""
    lr = opt.lr_of()
    n = opt.index.num_groups
    sums = {key: torch.zeros(n, dtype=torch.float64) for key in ("xx", "xd", "dd", "moved", "lr_xx")}
    for rows, x in zip(opt.index.rows, before, strict=True):
        step_size = lr[id(rows.param)]
        x64 = rows.per_position(x).double()
        diff = x64 - rows.per_position(rows.param.detach()).double()
        d = diff / step_size if step_size else torch.zeros_like(diff)
        valid = rows.gid >= 0
        for key, value in (("xx", (x64 * x64).sum(1)), ("xd", (x64 * d).sum(1)), ("dd", (d * d).sum(1)),
                           ("moved", (x64 * diff).sum(1)), ("lr_xx", step_size * (x64 * x64).sum(1))):
            sums[key].index_add_(0, rows.gid[valid], value[valid])
    return sums


def test_step_sums_match_float64_sums_with_per_group_learning_rates() -> None:
    model, _, space = small_setup()
    block = list(model.block.parameters())
    others = [p for p in model.parameters() if all(p is not q for q in block)]
    stem = list(model.stem.parameters())
    rest = [p for p in others if all(p is not q for q in stem)]
    base = torch.optim.SGD([{"params": block, "lr": 0.05}, {"params": stem, "lr": 0.0}, {"params": rest, "lr": 0.2}], momentum=0.9)
    opt = trainonce.HESSO(base, space, target_sparsity=0.5, start_step=100, pruning_steps=10, periods=2)
    train(model, opt, range(2), batches())
    before = opt.capture()
    kept = [t.clone() for t in before]
    train(model, base, range(2, 3), batches())  # one base step from ``before``
    sums = opt.step_sums(before)
    assert all(torch.equal(a, b) for a, b in zip(before, kept, strict=True))  # left unchanged
    for key, expected in direct_sums(opt, before).items():
        assert torch.allclose(getattr(sums, key), expected, rtol=1e-5, atol=1e-12), key
    assert [t.data_ptr() for t in opt.capture()] == [t.data_ptr() for t in before]  # the scratch is reused


def test_step_sums_of_bfloat16_parameters_are_reduced_in_float32() -> None:
    model, _, space = small_setup()
    model.to(torch.bfloat16)
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = trainonce.HESSO(base, space, target_sparsity=0.5, start_step=100, pruning_steps=10, periods=2)
    generator = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator).to(torch.bfloat16)
    before = opt.capture()
    base.step()
    sums = opt.step_sums(before)
    for key, expected in direct_sums(opt, before).items():
        assert torch.allclose(getattr(sums, key), expected, rtol=1e-5, atol=1e-12), key


def test_projection_inner_product_from_the_sums() -> None:
    """``<x_new, x> = xx - moved - coefficient * lr_xx`` after ``add_to_groups``, as DHSPG uses it."""
    model, _, space = small_setup()
    opt = trainonce.DHSPG(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), space, 0.5, start_step=100, pruning_steps=100)
    train(model, opt, range(2), batches())
    before = [t.clone() for t in opt.capture()]
    train(model, opt.base, range(2, 3), batches())
    sums = opt.step_sums(before)
    coefficient = torch.rand(opt.index.num_groups, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    coefficient[::3] = 0.0
    opt.add_to_groups(before, coefficient)
    inner = torch.zeros(opt.index.num_groups, dtype=torch.float64)
    for rows, x in zip(opt.index.rows, before, strict=True):
        valid = rows.gid >= 0
        value = (rows.per_position(rows.param.detach()).double() * rows.per_position(x).double()).sum(1)
        inner.index_add_(0, rows.gid[valid], value[valid])
    assert torch.allclose(sums.xx - sums.moved - coefficient * sums.lr_xx, inner, rtol=1e-5, atol=1e-10)


def copies_held(opt: GroupSparseOptimizer) -> int:
    """Parameter-shaped tensors in the optimizer's scratch buffer, in copies of the grouped parameters."""
    scratch = opt._scratch or []
    return len(scratch) // len(opt.index.rows)


def test_scratch_is_one_copy_and_released_when_no_longer_needed() -> None:
    model, _, space = small_setup()
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05), space, target_sparsity=0.5, start_step=1,
                          pruning_steps=4, periods=2)
    held = []
    train(model, opt, range(7), batches(), after_step=lambda _: held.append(copies_held(opt)))
    assert held == [0, 1, 1, 0, 0, 0, 0]  # kept from the first selection (step 1) to the last one (step 3)

    model, _, space = small_setup()
    dhspg = trainonce.DHSPG(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), space, 0.5, start_step=2,
                            pruning_steps=100, penalty=Penalty(0.5, 2.0, 10.0))
    held = []
    train(model, dhspg, range(120), batches(), after_step=lambda _: held.append(copies_held(dhspg)))
    assert not dhspg.penalising and held[:2] == [0, 0] and held[2] == 1 and held[-1] == 0
