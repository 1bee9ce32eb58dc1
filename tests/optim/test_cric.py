"""HESSO-CRIC contracts: protects indispensable paths, exact K, stop rule, restores, resume, errors."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import trainonce
from trainonce.errors import TrainonceError
from trainonce.optim.cric import loss_sensitivity

from .test_hesso import assert_same_weights, batches, checkpoint, restore, small_setup

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def run(model: nn.Module, opt: torch.optim.Optimizer, steps: range, data: Callable[[int], Batch], *, mode: str = "closure",
        loss_fn: LossFn = nn.functional.cross_entropy, after_step: Callable[[int], None] | None = None) -> None:
    """Train with ``step(closure)`` or, in ``"loss"`` mode, ``step(loss=...)`` after a plain backward."""
    model.train()
    for step in steps:
        x, y = data(step)

        def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss

        if mode == "closure":
            opt.step(closure)
        else:
            opt.step(loss=closure())  # type: ignore[call-arg]
        if after_step is not None:
            after_step(step)


def cric(model: nn.Module, space: trainonce.SearchSpace, base: torch.optim.Optimizer | None = None, target: float = 0.5,
         **options: object) -> trainonce.HESSOCRIC:
    settings: dict[str, object] = {"start_step": 2, "sampling_steps": 3, "max_cycles": 3, "hybrid_steps": 4}
    settings.update(options)
    base = base or torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return trainonce.HESSOCRIC(base, space, target, **settings)  # type: ignore[arg-type]


# -- an indispensable path that saliency ranks as redundant ------------------------------------
class TwoPaths(nn.Module):
    """A narrow path that carries the whole signal with small weights, and a wide useless one."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow, self.narrow_out = nn.Linear(8, 4), nn.Linear(4, 1)
        self.wide, self.wide_out = nn.Linear(8, 32), nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.narrow_out(torch.relu(self.narrow(x))) + self.wide_out(torch.relu(self.wide(x)))


def two_paths(seed: int) -> tuple[TwoPaths, trainonce.SearchSpace, Callable[[int], Batch]]:
    """The model starts at the teacher: the narrow path is the target function, the wide path adds 0."""
    torch.manual_seed(seed)
    model = TwoPaths()
    with torch.no_grad():
        model.narrow.weight.mul_(0.1)
        model.narrow.bias.zero_()
        model.narrow_out.weight.copy_(torch.tensor([[16.0, -16.0, 16.0, -16.0]]))
        model.narrow_out.bias.zero_()
        model.wide.weight.normal_(0, 1.0)
        model.wide_out.weight.zero_()
        model.wide_out.bias.zero_()
    teacher = [p.detach().clone() for p in (*model.narrow.parameters(), *model.narrow_out.parameters())]

    def data(step: int) -> Batch:
        generator = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(64, 8, generator=generator)
        w, b, v, c = teacher
        return x, torch.relu(x @ w.T + b) @ v.T + c + 0.05 * torch.randn(64, 1, generator=generator)

    return model, trainonce.analyze(model, torch.randn(2, 8)), data


def held_out_loss(model: nn.Module, data: Callable[[int], Batch]) -> float:
    x, y = data(10_000)
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x), y))


@pytest.mark.parametrize("seed", [0, 1])
def test_cric_keeps_the_indispensable_path_that_hesso_prunes(seed: int) -> None:
    steps = range(40)
    model, space, data = two_paths(seed)
    start = held_out_loss(model, data)
    hesso = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=3e-4), space, 0.5, start_step=2, pruning_steps=16, periods=2)
    run(model, hesso, steps, data, loss_fn=nn.functional.mse_loss)
    narrow = 0  # node group 0: the narrow path
    assert hesso.finished and hesso.redundant().get(narrow) is not None  # low saliency: HESSO cuts the signal
    hesso_loss = held_out_loss(model, data)

    model, space, data = two_paths(seed)
    opt = trainonce.HESSOCRIC(torch.optim.SGD(model.parameters(), lr=3e-4), space, 0.5, start_step=2, sampling_steps=4,
                              max_cycles=3, hybrid_steps=8)
    run(model, opt, steps, data, loss_fn=nn.functional.mse_loss)
    assert opt.finished
    sensitivity = opt.sensitivity()
    assert sensitivity[narrow] > 1.0 > sensitivity[1]  # zeroing a quarter of the narrow path multiplies the loss
    redundant = opt.redundant()
    assert narrow not in redundant and len(redundant[1]) == opt.num_target  # only wide channels go
    cric_loss = held_out_loss(model, data)
    assert cric_loss < 2 * start
    assert hesso_loss > 5 * cric_loss


# -- exact sparsity and the phases ------------------------------------------------------------
@pytest.mark.parametrize("mode", ["closure", "loss"])
def test_exactly_k_groups_end_zero_and_the_model_constructs(mode: str) -> None:
    model, inputs, space = small_setup()
    opt = cric(model, space)
    phases: list[str] = []

    def record(_: int) -> None:
        if opt.phase == "done" and "done" not in phases:  # the step the final groups reach zero: state zeroed with them
            for rows in opt.index.rows:
                positions = rows.positions(opt.zero_mask())
                assert not opt.state[rows.param]["momentum_buffer"].index_select(rows.dim, positions).any()
        phases.append(opt.phase)

    run(model, opt, range(opt.start_step + opt.pruning_steps_bound(mode == "closure") + 2), batches(), mode=mode,
        after_step=record)
    assert opt.finished and phases[-2:] == ["done", "done"]
    k = int(space.num_prunable * 0.5)
    norms = opt.index.squared_norms()
    assert int((norms == 0).sum()) == k and torch.equal(norms == 0, opt.zero_mask())
    probe_steps = len(opt.plan) if mode == "closure" else 2 * len(opt.plan) - 1
    assert phases[:2 + probe_steps] == ["warmup"] * 2 + ["probe"] * probe_steps  # recorded after each step: the anchor shows "probe"
    cycles = len(opt.own_state["suspects_per_cycle"])
    assert phases.count("cycle") == cycles * opt.sampling_steps and phases.count("decay") == opt.hybrid_steps
    model.eval()
    compact = space.construct(opt.redundant())
    with torch.no_grad():
        assert torch.allclose(compact(inputs), model(inputs), atol=1e-5)


def test_closure_probing_is_invisible_to_training() -> None:
    """Probes are restored bit for bit before each base step, and their BatchNorm updates undone."""
    model, _, space = small_setup()
    twin, _, _ = small_setup()
    opt = cric(model, space)
    plain = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    steps = range(opt.start_step + 1 + len(opt.plan))
    run(model, opt, steps, batches())
    run(twin, plain, steps, batches())
    assert opt.phase == "cycle" and bool(opt.own_state["probe_sensitivity"].isfinite().all())
    assert_same_weights(model, twin)


def test_non_prunable_parameters_keep_training_while_probing_and_cycling() -> None:
    model, _, space = small_setup()
    opt = cric(model, space)
    head = model.head[-1].weight  # the classifier: produces no prunable group
    assert all(rows.param is not head for rows in opt.index.rows)
    seen: list[tuple[str, torch.Tensor]] = []
    run(model, opt, range(opt.start_step + opt.pruning_steps_bound(closure=False)), batches(), mode="loss",
        after_step=lambda _: seen.append((opt.phase, head.detach().clone())))
    for (_, before), (phase, after) in itertools.pairwise(seen):
        if phase in ("probe", "cycle"):
            assert not torch.equal(before, after), phase
    assert {"probe", "cycle"} <= {phase for phase, _ in seen}


def test_loss_mode_reports_probed_losses_and_restores_after_them() -> None:
    model, _, space = small_setup()
    opt = cric(model, space, base=torch.optim.SGD(model.parameters(), lr=0.0))
    run(model, opt, range(opt.start_step + 1), batches(), mode="loss")  # the anchor arms the first probe
    mask = opt.own_state["probe_mask"]
    assert opt.own_state["probe_pending"] and int(mask.sum()) >= 1
    assert not bool(opt.index.squared_norms()[mask].any())  # the caller's next forward sees the probe
    run(model, opt, range(opt.start_step + 1, opt.start_step + 2), batches(), mode="loss")
    assert not opt.own_state["probe_pending"] and bool(opt.index.squared_norms()[mask].all())
    assert math.isfinite(float(opt.own_state["probe_sensitivity"][0]))


# -- cycles -----------------------------------------------------------------------------------
def test_a_cycle_without_new_suspects_stops_cycling() -> None:
    model, _, space = small_setup()
    opt = cric(model, space, base=torch.optim.SGD(model.parameters(), lr=0.0), importance={"magnitude": 1.0}, max_cycles=4)
    run(model, opt, range(opt.start_step + opt.pruning_steps_bound()), batches())
    # frozen weights, magnitude only: the decaying bottom-K stays the bottom-K, nothing new is suspected
    assert opt.own_state["suspects_per_cycle"] == [0]
    assert opt.finished


@pytest.mark.parametrize("max_cycles", [1, 3])
def test_max_cycles_bounds_the_cycling(max_cycles: int) -> None:
    model, _, space = small_setup()
    # a negative magnitude weight ranks the largest groups lowest: while they decay, the next largest take their place;
    # once they are restored they are the bottom again, so the second cycle finds nothing new
    opt = cric(model, space, base=torch.optim.SGD(model.parameters(), lr=0.0), target=0.2, importance={"magnitude": -1.0},
               max_cycles=max_cycles)
    phases: list[str] = []
    run(model, opt, range(opt.start_step + opt.pruning_steps_bound()), batches(), after_step=lambda _: phases.append(opt.phase))
    expected = [opt.num_target] if max_cycles == 1 else [opt.num_target, 0]
    assert opt.own_state["suspects_per_cycle"] == expected  # 1: stopped by the bound although suspects remained
    assert phases.count("cycle") == len(expected) * opt.sampling_steps
    assert opt.finished and int(opt.zero_mask().sum()) == opt.num_target


def test_each_cycle_decays_its_set_then_restores_it_from_the_snapshot_and_keeps_the_rest() -> None:
    model, _, space = small_setup()
    opt = cric(model, space, target=0.2, importance={"magnitude": -1.0}, max_cycles=2)  # two cycles for sure
    data = batches()
    run(model, opt, range(opt.start_step + 1), data)
    snapshot = [t.clone() for t in opt.own_state["snapshot"]]
    anchor_head = model.head[-1].weight.detach().clone()
    run(model, opt, range(opt.start_step + 1, opt.start_step + 1 + len(opt.plan)), data)
    assert opt.phase == "cycle"
    cycle_start = opt.start_step + 1 + len(opt.plan)
    violating = opt.own_state["violating"].clone()
    run(model, opt, range(cycle_start, cycle_start + opt.sampling_steps - 1), data)
    norms = opt.index.squared_norms()
    assert bool(norms[violating].gt(0).all())  # decaying, not zero yet
    run(model, opt, range(cycle_start + opt.sampling_steps - 1, cycle_start + opt.sampling_steps), data)
    assert opt.own_state["cycle"] == 2 and not torch.equal(opt.own_state["violating"], violating)
    trained = 0
    for rows, saved in zip(opt.index.rows, snapshot, strict=True):
        back, kept = rows.positions(violating), rows.positions(~violating)
        assert torch.equal(rows.param.detach().index_select(rows.dim, back), saved.index_select(rows.dim, back))
        assert not opt.state[rows.param]["momentum_buffer"].index_select(rows.dim, back).any()
        trained += int(rows.per_position(rows.param.detach()).index_select(0, kept).ne(rows.per_position(saved).index_select(0, kept)).any(1).sum())
    assert trained > 0.9 * int((~violating).sum())  # the other groups keep their training (a bias before BN has no gradient)
    assert not torch.equal(model.head[-1].weight, anchor_head)  # not rolled back


# -- resume -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["closure", "loss"])
def test_state_dict_resumes_bit_for_bit(mode: str) -> None:
    model, inputs, space = small_setup()
    make = lambda m, s: cric(m, s, base=torch.optim.Adam(m.parameters(), lr=1e-2))  # noqa: E731
    opt = make(model, space)
    # closure: one step into the first cycle; loss: after a reference step, with a probe armed
    stop = opt.start_step + 2 + len(opt.plan) if mode == "closure" else opt.start_step + 3
    data = batches()
    total = range(stop, opt.start_step + opt.pruning_steps_bound(mode == "closure") + 2)
    run(model, opt, range(stop), data, mode=mode)
    expected = {"closure": "cycle", "loss": "probe"}[mode]
    assert opt.phase == expected and (mode == "closure" or opt.own_state["probe_pending"])
    buffer = checkpoint(model, opt)
    run(model, opt, total, data, mode=mode)
    assert opt.finished

    resumed, opt2 = restore(buffer, inputs, make)
    run(resumed, opt2, total, data, mode=mode)
    assert_same_weights(model, resumed)
    assert torch.equal(opt.zero_mask(), opt2.zero_mask())
    assert opt.own_state["suspects_per_cycle"] == opt2.own_state["suspects_per_cycle"]


# -- errors -----------------------------------------------------------------------------------
def test_clear_errors() -> None:
    model, _, space = small_setup()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    required = {"sampling_steps": 2, "hybrid_steps": 2}
    for bad, match in [({"sampling_steps": 0}, "sampling_steps"), ({"max_cycles": 0}, "max_cycles"),
                       ({"hybrid_steps": 0}, "hybrid_steps"), ({"tolerance": -1}, "tolerance"),
                       ({"start_step": -1}, "start_step"), ({"trial_sparsities": (0.5, 1.0)}, "trial_sparsities"),
                       ({"trial_sparsities": ()}, "trial_sparsities"), ({"sensitivity_weight": -1.0}, "sensitivity_weight"),
                       ({"importance": {"gradient": 1.0}}, "unknown importance")]:
        with pytest.raises(TrainonceError, match=match):
            trainonce.HESSOCRIC(base, space, 0.5, **{**required, **bad})  # type: ignore[arg-type]
    with pytest.raises(TrainonceError, match=r"in \(0, 1\)"):
        trainonce.HESSOCRIC(base, space, 1.0, **required)
    with pytest.raises(TrainonceError, match="at most"):
        trainonce.HESSOCRIC(base, space, 0.99, **required)

    opt = trainonce.HESSOCRIC(base, space, 0.5, start_step=1, **required)
    x, y = batches()(0)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # warm-up: no loss needed
    with pytest.raises(TrainonceError, match="needs the loss at the anchor step"):
        opt.step()
    with pytest.raises(TrainonceError, match="not both"):
        opt.step(lambda: 1.0, loss=1.0)
    saved = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.1), space, 0.5, pruning_steps=10).state_dict()
    with pytest.raises(TrainonceError, match="no HESSOCRIC state"):
        opt.load_state_dict(saved)


def test_loss_sensitivity() -> None:
    assert loss_sensitivity(2.0, 1.0) == pytest.approx(math.log(2.0))
    assert loss_sensitivity(0.5, 1.0) == 0.0  # a probe that helps is not "negative sensitivity"
    assert loss_sensitivity(-1.0, -2.0) == pytest.approx(math.log(1.5))  # losses that can be negative
    assert loss_sensitivity(float("nan"), 1.0) == loss_sensitivity(float("inf"), 1.0) > 100
