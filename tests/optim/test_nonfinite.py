"""Non-finite training, GradScaler, unreachable budgets and schedules that end on time.

Properties, not trajectories: a NaN is refused before anything moves; skipped steps (``nonfinite=
"skip"`` or a GradScaler overflow) keep the schedule aligned, so the target is reached at the step
it was planned for; a budget the frozen parts make unreachable is an error at construction; DHSPG
and H2SPG end their schedule with their accepted set exactly zero however far the penalty got.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import trainonce
from trainonce.errors import NonFiniteError, TrainonceError
from trainonce.optim import Penalty
from zoo import build

from .test_hesso import batches, small_setup

Data = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def hesso(model: nn.Module, space: trainonce.SearchSpace, **options: object) -> trainonce.HESSO:
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return trainonce.HESSO(base, space, 0.5, start_step=2, pruning_steps=12, periods=3, **options)  # type: ignore[arg-type]


def step_once(model: nn.Module, opt: torch.optim.Optimizer, data: Data, step: int, poison: str | None = None,
              scaler: torch.amp.GradScaler | None = None) -> None:
    """One training step; ``poison`` puts a NaN (or an inf) into the stem's weight gradient."""
    x, y = data(step)
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if poison is not None:
        grad = model.stem[0].weight.grad  # type: ignore[index]
        grad[0, 0, 0, 0] = math.nan if poison == "nan" else math.inf
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


def snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [p.detach().clone() for p in model.parameters()]
    for state in opt.state.values():
        if isinstance(state, dict):
            tensors += [v.clone() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


@pytest.mark.parametrize("step", [2, 3, 14])  # a selection, a decay and a hold step
def test_a_nan_gradient_is_refused_before_anything_moves(step: int) -> None:
    model, _, space = small_setup()
    opt, data = hesso(model, space), batches()
    model.train()
    for s in range(step):
        step_once(model, opt, data, s)
    before = snapshot(model, opt)
    with pytest.raises(NonFiniteError, match=rf"step {step}: the gradient of 'stem.0.weight' is not finite"):
        step_once(model, opt, data, step, poison="nan")
    after = snapshot(model, opt)
    assert len(before) == len(after) and all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert opt.own_state["step"] == step


def test_a_nan_loss_from_the_closure_is_refused() -> None:
    model, inputs, space = small_setup()
    opt = hesso(model, space)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(inputs).sum() * math.nan
        loss.backward()
        return loss

    with pytest.raises(NonFiniteError, match="step 0: the loss is nan"):
        opt.step(closure)


def run_with_skips(skipped: set[int], scaler: bool) -> tuple[nn.Module, trainonce.HESSO, list[bool]]:
    model, _, space = small_setup()
    opt, data = hesso(model, space, nonfinite="skip"), batches()
    grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**6) if scaler else None
    finished = []
    model.train()
    for s in range(20):
        step_once(model, opt, data, s, poison="inf" if s in skipped else None, scaler=grad_scaler)
        finished.append(opt.finished)
    return model, opt, finished


@pytest.mark.parametrize("scaler", [False, True], ids=["nonfinite-skip", "grad-scaler"])
def test_skipped_steps_keep_the_schedule_aligned(scaler: bool) -> None:
    skipped = {2, 6, 9, 13}  # the first selection, a selection, a decay step, the last decay step
    model, opt, finished = run_with_skips(skipped, scaler)
    assert opt.own_state["skipped_steps"] == len(skipped)
    assert finished.index(True) == opt.schedule.end - 1  # on the planned step, not four later
    assert int(opt.zero_mask().sum()) == int(opt.index.num_groups * 0.5)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    compact = opt.space.construct(opt.redundant())
    assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in model.parameters())


def test_grad_scaler_and_nonfinite_skip_take_the_same_steps() -> None:
    """Scaling by a power of two and unscaling is exact, so both runs end with the same bits."""
    skipped = {3, 7, 11}
    plain, _, _ = run_with_skips(skipped, scaler=False)
    scaled, _, _ = run_with_skips(skipped, scaler=True)
    for a, b in zip(plain.parameters(), scaled.parameters(), strict=True):
        assert torch.equal(a, b)


def test_an_unreachable_budget_is_refused_when_the_optimizer_is_built() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainonceError, match=r"asks to remove 99\.9% of the model's MACs, but at most .* can go"):
        trainonce.HESSO(base, space, target_flops=0.999, pruning_steps=10, group_divisible=4)
    trainonce.HESSO(base, space, target_flops=0.3, pruning_steps=10)  # a reachable one is accepted


WEAK = Penalty(1e-6, 2.0, 10.0)  # far too weak to drive anything to zero in a few steps


def test_dhspg_ends_its_schedule_at_the_target_whatever_the_penalty() -> None:
    model, _, space = small_setup()
    opt = trainonce.DHSPG(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, 0.5, start_step=2,
                          pruning_steps=6, penalty=WEAK)
    data = batches()
    model.train()
    zero_counts = []
    for s in range(12):
        step_once(model, opt, data, s)
        zero_counts.append(int(opt.zero_mask().sum()))
    assert zero_counts[6] < opt.num_target <= zero_counts[7]  # the last scheduled step projects
    assert not bool((opt.zero_mask() & ~opt.own_state["penalised"]).any())
    space.construct(opt.redundant())


def test_h2spg_ends_its_schedule_with_the_accepted_set_exactly_zero() -> None:
    model, x = build("deep_plain_residual")
    space = trainonce.analyze(model, x, mode="erase")
    opt = trainonce.H2SPG(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, target_sparsity=0.5,
                          start_step=2, pruning_steps=5, penalty=WEAK)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(8):
        opt.zero_grad()
        xs, ys = torch.randn(8, *x.shape[1:], generator=generator), torch.randint(0, 10, (8,), generator=generator)
        nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()
    assert opt.num_target > 0 and torch.equal(opt.own_state["zero"], opt.own_state["penalised"])
    model.eval()
    space.construct(opt.redundant())


def test_a_state_saved_with_other_settings_is_refused_before_loading() -> None:
    model, _, space = small_setup()
    opt = hesso(model, space)
    model.train()
    for s in range(4):
        step_once(model, opt, batches(), s)
    saved = opt.state_dict()
    other = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, 0.6, start_step=2,
                            pruning_steps=12, periods=3)
    untouched = snapshot(model, other)
    with pytest.raises(TrainonceError, match=r"other settings \(target_sparsity: saved 0.5, now 0.6\)"):
        other.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(untouched, snapshot(model, other), strict=True))
    assert other.own_state["step"] == 0
