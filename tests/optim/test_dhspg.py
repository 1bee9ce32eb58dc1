"""DHSPG contracts: lambda bounds, only penalised groups zeroed, target within tolerance, resume."""

from __future__ import annotations

import pytest
import torch

import trainonce
from trainonce.errors import TrainonceError
from trainonce.optim import Penalty
from trainonce.optim.halfspace import adaptive_lambda

from .test_hesso import assert_same_weights, batches, checkpoint, restore, small_setup, train

STRONG = Penalty(0.2, 2.0, 10.0)  # a toy task has few steps: a stronger push than the reference default


def test_lambda_keeps_a_descent_direction_whenever_the_step_grows_the_group() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=generator, dtype=torch.float64)
    d = torch.randn(2000, 16, generator=generator, dtype=torch.float64) * torch.rand(2000, 1, generator=generator, dtype=torch.float64) * 3
    xd, norm_x, dd = (x * d).sum(1), x.norm(dim=1), (d * d).sum(1)
    for penalty in (Penalty(1e-3, 2.0, 10.0), Penalty(1e-2, 20.0, 1e3), STRONG):
        lam = adaptive_lambda(xd, norm_x, dd, penalty)
        growing = xd < 0
        lower = -xd[growing] / norm_x[growing]
        upper = -dd[growing] * norm_x[growing] / xd[growing]
        assert bool((lam[growing] < upper).all())  # d + lam x/||x|| stays a descent direction
        capped = lam[growing] >= penalty.cap * penalty.lmbda * (1 - 1e-12)
        assert bool((lam[growing][~capped] > lower[~capped]).all())  # and the group shrinks
        combined = d[growing] + lam[growing, None] * x[growing] / norm_x[growing, None]
        assert bool(((combined * d[growing]).sum(1) > 0).all())
        assert bool((lam[~growing] == penalty.lmbda).all())


def test_reaches_the_target_within_tolerance_zeroing_only_penalised_groups() -> None:
    model, inputs, space = small_setup()
    opt = trainonce.DHSPG(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), space, 0.5, start_step=5, pruning_steps=250, penalty=STRONG)
    data = batches()
    zero_history = []

    def check(_: int) -> None:
        zero = opt.zero_mask()
        assert not bool((zero & ~opt.own_state["penalised"]).any())
        if zero_history:
            assert bool((zero_history[-1] <= zero).all())  # once zero, always zero
        zero_history.append(zero)

    train(model, opt, range(300), data, after_step=check)
    n = space.num_prunable
    zero = opt.zero_mask()
    assert int(n * 0.5) <= int(zero.sum()) <= int(n * 0.55)
    assert int(opt.own_state["penalised"].sum()) == int(n * 0.55)
    assert torch.equal(opt.index.squared_norms() == 0, zero)
    assert not opt.penalising
    compact = space.construct(opt.redundant())
    with torch.no_grad():
        assert torch.allclose(compact(inputs), model(inputs), atol=1e-5)


def test_state_dict_resumes_bit_for_bit_mid_penalty() -> None:
    model, inputs, space = small_setup()
    make = lambda m, s: trainonce.DHSPG(torch.optim.Adam(m.parameters(), lr=1e-2), s, 0.5, start_step=3, pruning_steps=100)  # noqa: E731
    opt = make(model, space)
    data = batches()
    train(model, opt, range(30), data)
    assert 0 < int(opt.zero_mask().sum()) < opt.num_target  # mid-penalty
    buffer = checkpoint(model, opt)
    train(model, opt, range(30, 60), data)
    resumed, opt2 = restore(buffer, inputs, make)
    train(resumed, opt2, range(30, 60), data)
    assert_same_weights(model, resumed)
    assert torch.equal(opt.zero_mask(), opt2.zero_mask())


def test_clear_errors() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainonceError, match="target_sparsity"):
        trainonce.DHSPG(base, space, 1.5, pruning_steps=10)
    with pytest.raises(TrainonceError, match="epsilon"):
        trainonce.DHSPG(base, space, 0.5, pruning_steps=10, epsilon=1.0)
    with pytest.raises(TrainonceError, match="at most"):
        trainonce.DHSPG(base, space, 0.99, pruning_steps=10)
    with pytest.raises(TrainonceError, match="no DHSPG state"):
        trainonce.DHSPG(base, space, 0.5, pruning_steps=10).load_state_dict(trainonce.HESSO(base, space, 0.5, pruning_steps=10).state_dict())
