"""trainonce.metrics: parameters, MACs and latency of a model, and before/after comparisons."""

from trainonce.metrics.compare import Comparison, Measure, compare
from trainonce.metrics.latency import (
    LatencyReport,
    fold_batchnorm,
    measure_latencies,
    measure_latency,
    to_channels_last,
)
from trainonce.metrics.macs import MacReport, count_macs
from trainonce.metrics.params import count_parameters

__all__ = [
    "Comparison",
    "LatencyReport",
    "MacReport",
    "Measure",
    "compare",
    "count_macs",
    "count_parameters",
    "fold_batchnorm",
    "measure_latencies",
    "measure_latency",
    "to_channels_last",
]
