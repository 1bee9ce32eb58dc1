"""Wall-clock latency of one forward pass.

Reported as median and 10th/90th percentiles rather than a mean: on a shared CPU the
distribution has a long right tail (scheduler, other processes), and the median is the number
that stays put between runs while p10/p90 show how far to trust it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.graph.inputs import ExampleInputs


@dataclass(frozen=True)
class LatencyReport:
    """Forward-pass latency in milliseconds (``samples`` holds every timed repeat).

    ``cpu_samples`` is the CPU time the calling thread spent in each pass. On the CPU with one
    thread all the work runs on the calling thread, and CPU time does not count the time the
    scheduler gave the core to other processes: on a busy shared machine it estimates the latency
    an idle machine would show. With more threads (or on CUDA) it misses work done elsewhere and
    is no latency.
    """

    median: float
    p10: float
    p90: float
    samples: tuple[float, ...]
    threads: int
    device: str
    cpu_samples: tuple[float, ...] = ()

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_samples) if self.cpu_samples else math.nan

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
    return measure_latencies([model], example_inputs, warmup, repeats, threads)[0]


def measure_latencies(
    models: Sequence[nn.Module],
    example_inputs: Any,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> list[LatencyReport]:
    """Time several models on the same inputs in interleaved rounds, as :func:`measure_latency` does one.

    Each of the ``repeats`` rounds runs every model once, starting one model later than the round
    before. Timing one model after the other lets a busy spell of a shared machine (another
    process, a frequency change) fall on one side of a comparison only; interleaved, it falls on
    all of them alike, and rotating the order keeps any model from always following the same
    neighbour (whose cache footprint it would inherit). ``samples[i]`` of every report come from
    round ``i``, so per-round ratios between the models can be taken as well.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not models:
        return []
    inputs = ExampleInputs.of(example_inputs)
    devices = [_device_of(model, inputs) for model in models]

    def timed(index: int) -> tuple[float, float]:
        if devices[index].type == "cuda":
            torch.cuda.synchronize(devices[index])
        start, cpu_start = time.perf_counter(), time.thread_time()
        inputs.call(models[index])
        if devices[index].type == "cuda":
            torch.cuda.synchronize(devices[index])
        return (time.perf_counter() - start) * 1e3, (time.thread_time() - cpu_start) * 1e3

    samples: list[list[tuple[float, float]]] = [[] for _ in models]
    with contextlib.ExitStack() as stack:
        for model in models:
            stack.enter_context(eval_mode(model))
        used_threads = stack.enter_context(num_threads(threads))
        stack.enter_context(torch.inference_mode())
        for index in range(len(models)):
            for _ in range(max(0, warmup)):
                timed(index)
        for round_ in range(repeats):
            for step in range(len(models)):
                index = (round_ + step) % len(models)
                samples[index].append(timed(index))
    return [_report(times, used_threads, str(device)) for times, device in zip(samples, devices, strict=True)]


def _report(samples: list[tuple[float, float]], threads: int, device: str) -> LatencyReport:
    wall = [w for w, _ in samples]
    ordered = sorted(wall)
    return LatencyReport(
        median=statistics.median(ordered),
        p10=_percentile(ordered, 0.10),
        p90=_percentile(ordered, 0.90),
        samples=tuple(wall),
        threads=threads,
        device=device,
        cpu_samples=tuple(c for _, c in samples),
    )


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm that directly follows a conv (or linear) folded into it.

    At inference such a BatchNorm is a per-channel affine map that deployment runtimes (ONNX
    Runtime, OpenVINO, TensorRT, inductor) fold into the preceding weights. Left unfolded it is a
    memory-bound pass over the activation whose cost shrinks with one factor of the width while the
    convolution's MACs shrink with two, so it weighs more in a compact model than in the full one
    (3% of a ResNet-50 pass on one CPU thread, 6-8% of a 70%-pruned one). Apply it to the full and
    the compact model alike. Uses ``torch.fx`` symbolic tracing
    (``torch.fx.experimental.optimization.fuse``); a model it cannot trace raises
    :class:`TrainonceError`.
    """
    from torch.fx.experimental.optimization import fuse

    copied = copy.deepcopy(model).eval()
    try:
        return fuse(copied, inplace=True)
    except Exception as error:  # symbolic tracing fails in many ways (control flow, proxies in C ops)
        raise TrainonceError(f"fold_batchnorm: torch.fx cannot trace {type(model).__name__}: {error}") from error


def to_channels_last(model: nn.Module, example_inputs: Any) -> tuple[nn.Module, ExampleInputs]:
    """A copy of ``model`` with its 4-D weights, and its 4-D input tensors, in channels-last (NHWC) memory format.

    oneDNN's CPU convolutions run natively on NHWC, and PyTorch keeps that format from layer to
    layer once the input has it. Like BatchNorm folding it is a deployment choice to apply to the
    full and the compact model alike; ``benchmarks/speedup.py`` measures what it changes.
    """
    inputs = ExampleInputs.of(example_inputs).map(
        lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
    copied = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    return copied, inputs
