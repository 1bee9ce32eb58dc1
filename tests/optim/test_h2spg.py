"""H2SPG and HESSO in erasing mode: targets, hierarchical validity, exact construction, resume."""

from __future__ import annotations

import io
import itertools

import torch
import torch.nn.functional as F
from torch import nn

import trainonce
from trainonce.construct.verify import max_output_difference, within_tolerance
from trainonce.graph.capture import capture
from trainonce.metrics.macs import count_macs
from trainonce.optim import Penalty
from zoo import build

STRONG = Penalty(5.0, 2.0, 10.0)  # short runs: the reference 1e-3 needs hundreds of epochs


def data(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(64, *shape[1:], generator=generator), torch.randint(0, 10, (64,), generator=generator)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range, xs: torch.Tensor, ys: torch.Tensor,
          watch: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
    model.train()
    for i in steps:
        batch = slice((i * 16) % 64, (i * 16) % 64 + 16)
        opt.zero_grad()
        F.cross_entropy(model(xs[batch]), ys[batch]).backward()
        opt.step()
        if watch is not None:
            watch.append((opt.own_state["zero"].clone(), opt.own_state["penalised"].clone()))  # type: ignore[attr-defined]


def setup(name: str = "deep_plain_residual", **options: object) -> tuple[nn.Module, torch.Tensor, trainonce.ErasingSpace, trainonce.H2SPG]:
    model, x = build(name)
    space = trainonce.analyze(model, x, mode="erase")
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    options = {"target_sparsity": 0.5, "start_step": 5, "pruning_steps": 30, "penalty": STRONG, **options}
    return model, x, space, trainonce.H2SPG(base, space, **options)  # type: ignore[arg-type]


def test_h2spg_zeroes_its_accepted_set_only_and_constructs_exactly() -> None:
    model, x, space, opt = setup()
    xs, ys = data(x.shape)
    history: list[tuple[torch.Tensor, torch.Tensor]] = []
    train(model, opt, range(40), xs, ys, history)
    zero, penalised = opt.own_state["zero"], opt.own_state["penalised"]
    assert opt.num_target == int(space.num_prunable * 0.5) == 6
    assert torch.equal(zero, penalised), "every accepted segment reached zero"
    for (z, p), (z_next, _) in itertools.pairwise(history):
        assert not bool((z & ~p).any()), "only penalised segments are ever zeroed"
        assert not bool((z & ~z_next).any()), "zero segments stay zero"
    erasing = space.erasing
    assert erasing.valid({erasing.candidates[g] for g in torch.nonzero(zero).squeeze(1).tolist()})
    model.eval()
    compact = space.construct(opt.redundant())
    diff, scale = max_output_difference(model, compact, space.inputs)
    assert within_tolerance(diff, scale)
    assert count_macs(capture(compact, x)[0]).total < count_macs(space.graph).total


def test_warm_up_is_plain_training_and_the_partition_follows_the_ema() -> None:
    model, x, space, opt = setup(start_step=4)
    twin, _ = build("deep_plain_residual")
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    xs, ys = data(x.shape)
    train(model, opt, range(4), xs, ys)
    train(twin, twin_opt, range(4), xs, ys)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b), "no penalty before start_step"
    assert not bool(opt.own_state["penalised"].any())
    train(model, opt, range(4, 5), xs, ys)
    order = torch.sort(opt.own_state["scores"], descending=True, stable=True).indices.tolist()
    expected = space.erasing.select(order, limit=opt.num_target)
    assert sorted(torch.nonzero(opt.own_state["penalised"]).squeeze(1).tolist()) == sorted(expected)


def test_target_flops_covers_the_mac_budget() -> None:
    model, x, space, opt = setup("super_residual", target_sparsity=None, target_flops=0.4)
    xs, ys = data(x.shape)
    train(model, opt, range(6), xs, ys)
    accepted = torch.nonzero(opt.own_state["penalised"]).squeeze(1).tolist()
    assert space.erasing.saved(accepted) >= 0.4 * space.erasing.total()
    model.eval()
    space.zero_candidates(accepted)
    compact = space.construct()
    assert count_macs(capture(compact, x)[0]).total <= 0.6 * count_macs(space.graph).total


def test_hierarchical_selection_stops_short_of_an_unreachable_target() -> None:
    """ResNet-18 has 11 erasable segments, but a block's body and its downsample cannot both go."""
    model, x, space, opt = setup("resnet18_imagenet_small", target_sparsity=0.9, start_step=0)
    xs, ys = data(x.shape)
    train(model, opt, range(1), xs, ys)
    accepted = torch.nonzero(opt.own_state["penalised"]).squeeze(1).tolist()
    assert len(accepted) == 8 and opt.num_target == 8
    assert space.erasing.valid({space.erasing.candidates[g] for g in accepted})
    assert opt.notes and "without disconnecting" in opt.notes[0]


def test_state_dict_mid_penalty_resumes_bit_for_bit() -> None:
    model, x, _space, opt = setup()
    xs, ys = data(x.shape)
    train(model, opt, range(10), xs, ys)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    train(model, opt, range(10, 20), xs, ys)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh, _ = build("deep_plain_residual")
    fresh.load_state_dict(saved["model"])
    fresh_space = trainonce.analyze(fresh, x, mode="erase")
    resumed = trainonce.H2SPG(torch.optim.SGD(fresh.parameters(), lr=0.05, momentum=0.9), fresh_space, target_sparsity=0.5,
                              start_step=5, pruning_steps=30, penalty=STRONG)
    resumed.load_state_dict(saved["opt"])
    train(fresh, resumed, range(10, 20), xs, ys)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(opt.own_state["zero"], resumed.own_state["zero"])


def test_hesso_in_erase_mode_reaches_k_segments_and_stays_connected() -> None:
    model, x = build("super_residual")
    space = trainonce.analyze(model, x, mode="erase")
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, target_sparsity=0.5,
                          start_step=2, pruning_steps=8, periods=4)
    xs, ys = data(x.shape)
    train(model, opt, range(12), xs, ys)
    zero = torch.nonzero(opt.zero_mask()).squeeze(1).tolist()
    assert len(zero) == int(space.num_prunable * 0.5) == 9
    assert space.erasing.valid({space.erasing.candidates[g] for g in zero})
    model.eval()
    compact = space.construct(opt.redundant())
    diff, scale = max_output_difference(model, compact, space.inputs)
    assert within_tolerance(diff, scale)
