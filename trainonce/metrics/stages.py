"""Cost of each trainonce stage on one model: analysis, optimizer step, construction, compact speed.

``trainonce bench`` calls :func:`bench_model`; the numbers are ratios taken in one process, so a
busy machine slows both sides of each ratio alike: HESSO's step against the bare base step it
wraps (fixed random gradients, alternating order), construction against one ``copy.deepcopy``
of the model, and the compact model's latency against the full model's next to the ideal that
its MAC ratio promises.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from trainonce.metrics.compare import compare


@dataclass(frozen=True)
class SparsityRow:
    """One random zeroing of ``sparsity`` of the groups, constructed and timed."""

    sparsity: float
    construct_s: float
    deepcopy_s: float
    params_ratio: float
    macs_ratio: float
    latency_ratio: float
    max_abs_diff: float

    @property
    def ideal_fraction(self) -> float:
        """Achieved speed-up / the speed-up the MAC ratio promises (1.0 = as fast as the MACs say)."""
        return self.macs_ratio / self.latency_ratio if self.latency_ratio > 0 else float("nan")


@dataclass(frozen=True)
class ModelBench:
    name: str
    graph_nodes: int
    num_prunable: int
    analyze_s: float
    step_ratio: float  # HESSO step (after pruning: the held phase) / base step
    rows: tuple[SparsityRow, ...]


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def step_overhead(space: Any, repeats: int = 30) -> float:
    """Median HESSO step / median SGD step in HESSO's held phase, on fixed random gradients."""
    from trainonce.optim import HESSO  # here, not at the top: trainonce.optim imports trainonce.metrics

    model = space.model
    twin = copy.deepcopy(model)
    parameters = [p for p in model.parameters() if p.requires_grad]
    twin_parameters = [p for p in twin.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    for p, q in zip(parameters, twin_parameters, strict=True):
        p.grad = torch.randn(p.shape, generator=generator) * 1e-3
        q.grad = p.grad.clone()
    base = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9)
    plain = torch.optim.SGD(twin_parameters, lr=1e-3, momentum=0.9)
    wrapped = HESSO(base, space, target_sparsity=0.5, start_step=0, pruning_steps=2, periods=2)
    for _ in range(4):  # past the pruning window; both sides allocate their momentum
        wrapped.step()
        plain.step()
    hesso, sgd = [], []
    for _ in range(repeats):
        hesso.append(_timed(wrapped.step)[0])
        sgd.append(_timed(plain.step)[0])
    for p in parameters:
        p.grad = None
    return statistics.median(hesso) / statistics.median(sgd)


def bench_model(name: str, model: nn.Module, inputs: Any, sparsities: Iterable[float] = (0.5, 0.7),
                threads: int | None = None, repeats: int = 20, quiet: bool = False) -> ModelBench:
    """Measure every stage on ``model`` (its weights are restored afterwards)."""
    from trainonce.groups.search_space import analyze

    saved = {k: v.clone() for k, v in model.state_dict().items()}
    sparsities = tuple(sparsities)
    with tqdm(total=2 + len(sparsities), desc=f"bench {name}", disable=quiet, leave=False) as bar:
        analyze_s, space = _timed(lambda: analyze(model, inputs))
        bar.update(1)
        step_ratio = step_overhead(space)
        model.load_state_dict(saved)
        bar.update(1)
        rows = []
        for sparsity in sparsities:
            space.zero_random(sparsity, seed=0)
            construct_s, compact = _timed(space.construct)
            deepcopy_s, _ = _timed(lambda: copy.deepcopy(model))
            c = compare(model, compact, inputs, repeats=repeats, threads=threads)
            assert c.latency is not None
            rows.append(SparsityRow(sparsity, construct_s, deepcopy_s, c.params.ratio, c.macs.ratio, c.latency.ratio,
                                    c.max_abs_diff))
            model.load_state_dict(saved)
            bar.update(1)
    return ModelBench(name, len(space.graph.nodes), space.num_prunable, analyze_s, step_ratio, tuple(rows))


def markdown(results: Iterable[ModelBench]) -> str:
    """One row per (model, sparsity): the table ``trainonce bench`` prints and writes."""
    header = ("| model | graph nodes | N groups | analyze (s) | HESSO step / SGD step | sparsity | construct (s) "
              "| construct / deepcopy | params | MACs | latency | % of ideal speed-up | max diff |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for result in results:
        for row in result.rows:
            lines.append(
                f"| {result.name} | {result.graph_nodes} | {result.num_prunable} | {result.analyze_s:.2f} "
                f"| {result.step_ratio:.2f} | {row.sparsity:.0%} | {row.construct_s:.2f} "
                f"| {row.construct_s / max(row.deepcopy_s, 1e-9):.1f} | {row.params_ratio:.3f} | {row.macs_ratio:.3f} "
                f"| {row.latency_ratio:.3f} | {100 * row.ideal_fraction:.0f}% | {row.max_abs_diff:.1e} |")
    return "\n".join(lines) + "\n"
