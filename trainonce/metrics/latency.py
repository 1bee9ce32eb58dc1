"""Wall-clock latency of one forward pass.

Reported as median and 10th/90th percentiles rather than a mean: on a shared CPU the
distribution has a long right tail (scheduler, other processes), and the median is the number
that stays put between runs while p10/p90 show how far to trust it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainonce.graph.inputs import ExampleInputs


@dataclass(frozen=True)
class LatencyReport:
    """Forward-pass latency in milliseconds (``samples`` holds every timed repeat)."""

    median: float
    p10: float
    p90: float
    samples: tuple[float, ...]
    threads: int
    device: str

    def __str__(self) -> str:
        return f"{self.median:.3f} ms (p10 {self.p10:.3f}, p90 {self.p90:.3f}; {len(self.samples)} runs, {self.threads} threads, {self.device})"


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the measurement; every module's own training flag is restored afterwards
    (``model.train(old)`` would not restore a model whose submodules had mixed modes)."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield
    finally:
        for module, training in modes.items():
            module.training = training


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op thread count (``None`` keeps the current one)."""
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def _device_of(model: nn.Module, inputs: ExampleInputs) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    for tensor in [*inputs.args, *inputs.kwargs.values()]:
        if isinstance(tensor, torch.Tensor):
            return tensor.device
    return torch.device("cpu")


def _percentile(sorted_samples: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), without needing numpy here."""
    if len(sorted_samples) == 1:
        return sorted_samples[0]
    position = q * (len(sorted_samples) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_samples) - 1)
    return sorted_samples[low] + (sorted_samples[high] - sorted_samples[low]) * (position - low)


def measure_latency(
    model: nn.Module,
    example_inputs: Any,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> LatencyReport:
    """Time ``repeats`` forward passes of ``model`` on ``example_inputs`` after ``warmup`` untimed ones.

    The model runs in eval mode under ``torch.inference_mode`` (the deployment setting: no
    autograd bookkeeping, BatchNorm on running statistics, dropout off); its training flags and
    torch's thread count are restored afterwards. Warm-up passes absorb one-off costs (allocator
    growth, oneDNN/cuDNN algorithm selection, lazy initialisation) that would otherwise land in the
    first sample. On CUDA every pass is bracketed by synchronisations so the asynchronous launch
    is not mistaken for the run time.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    inputs = ExampleInputs.of(example_inputs)
    device = _device_of(model, inputs)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    samples: list[float] = []
    with eval_mode(model), num_threads(threads) as used_threads, torch.inference_mode():
        for _ in range(max(0, warmup)):
            inputs.call(model)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            inputs.call(model)
            sync()
            samples.append((time.perf_counter() - start) * 1e3)
    ordered = sorted(samples)
    return LatencyReport(
        median=statistics.median(ordered),
        p10=_percentile(ordered, 0.10),
        p90=_percentile(ordered, 0.90),
        samples=tuple(samples),
        threads=used_threads,
        device=str(device),
    )
