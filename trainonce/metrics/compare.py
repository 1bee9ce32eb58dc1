"""Before/after comparison of a full model and its compact (pruned, constructed) counterpart.

One call gives the numbers a pruning result is judged by — parameters, MACs, latency — and the
output difference that says whether the comparison is meaningful at all (a compact model that
does not reproduce the zeroed full model is a bug, not a compression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainonce.construct.verify import max_output_difference
from trainonce.graph.capture import capture
from trainonce.graph.inputs import ExampleInputs
from trainonce.metrics.latency import LatencyReport, fold_batchnorm, measure_latencies, to_channels_last
from trainonce.metrics.macs import MacReport, count_macs
from trainonce.metrics.params import count_parameters


def _divide(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


@dataclass(frozen=True)
class Measure:
    """One quantity before (``full``) and after (``compact``) compression."""

    full: float
    compact: float

    @property
    def ratio(self) -> float:
        """compact / full: the fraction that is left (0.25 = 4x smaller)."""
        return _divide(self.compact, self.full)

    @property
    def speedup(self) -> float:
        """full / compact: how many times smaller (or, for latency, faster) the compact model is."""
        return _divide(self.full, self.compact)


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`. ``latency`` holds median milliseconds (``None`` when not measured)."""

    params: Measure
    macs: Measure
    latency: Measure | None
    max_abs_diff: float
    output_scale: float  # max |full output|, to judge max_abs_diff against
    mac_reports: tuple[MacReport, MacReport]
    latency_reports: tuple[LatencyReport, LatencyReport] | None = None

    @property
    def speedup(self) -> float | None:
        """Median-latency speed-up of the compact model (full / compact)."""
        return self.latency.speedup if self.latency is not None else None

    def table(self) -> str:
        """Aligned text table: before / after / ratio per row, then the output difference."""
        rows: list[tuple[str, str, str, str]] = [
            ("params", _count(self.params.full), _count(self.params.compact), f"{self.params.ratio:.3f}x"),
            ("MACs", _count(self.macs.full), _count(self.macs.compact), f"{self.macs.ratio:.3f}x"),
        ]
        if self.latency is not None:
            rows.append(
                (
                    "latency",
                    f"{self.latency.full:.3f} ms",
                    f"{self.latency.compact:.3f} ms",
                    f"{self.latency.ratio:.3f}x ({self.latency.speedup:.2f}x speed-up)",
                )
            )
        header = ("", "before", "after", "ratio")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
        lines = []
        for row in [header, *rows]:
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip())
        lines.append(f"max abs output difference: {self.max_abs_diff:.3g} (max |output| {self.output_scale:.3g})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _count(n: float) -> str:
    """Human-readable count with an SI suffix, two decimals (the way MAC tables are printed)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n:.0f}"


def compare(
    full: nn.Module,
    compact: nn.Module,
    example_inputs: Any,
    latency: bool = True,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    include_norms: bool = False,
    fold_bn: bool = False,
    channels_last: bool = False,
) -> Comparison:
    """Compare ``full`` and ``compact`` on the same ``example_inputs``.

    MACs come from capturing each model and :func:`count_macs` (``include_norms`` as there), so
    both sides are counted by the same rules; latency (skipped with ``latency=False``, it is the
    slow part) from :func:`measure_latencies` with the given ``warmup``/``repeats``/``threads``, the
    two models timed in alternating rounds so that machine noise hits both alike;
    the output difference is taken in eval mode over every output tensor. Training flags of both
    models are left as they were. ``fold_bn`` (:func:`fold_batchnorm`) and ``channels_last``
    (:func:`to_channels_last`) time deployment-style copies instead, made the same way for both
    models so the ratio stays fair; MACs and the output difference use the models as given.
    """
    inputs = ExampleInputs.of(example_inputs)
    mac_full = count_macs(capture(full, inputs)[0], include_norms=include_norms)
    mac_compact = count_macs(capture(compact, inputs)[0], include_norms=include_norms)
    diff, scale = max_output_difference(full, compact, inputs)
    latency_reports = None
    latency_measure = None
    if latency:
        timed, timed_inputs = [full, compact], inputs
        if fold_bn:
            timed = [fold_batchnorm(model) for model in timed]
        if channels_last:
            prepared = [to_channels_last(model, inputs) for model in timed]
            timed, timed_inputs = [model for model, _ in prepared], prepared[0][1]
        before, after = measure_latencies(timed, timed_inputs, warmup=warmup, repeats=repeats, threads=threads)
        latency_reports = (before, after)
        latency_measure = Measure(before.median, after.median)
    return Comparison(
        params=Measure(count_parameters(full), count_parameters(compact)),
        macs=Measure(mac_full.total, mac_compact.total),
        latency=latency_measure,
        max_abs_diff=diff,
        output_scale=scale,
        mac_reports=(mac_full, mac_compact),
        latency_reports=latency_reports,
    )
