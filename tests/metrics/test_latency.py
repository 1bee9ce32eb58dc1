"""Latency: sane statistics, and the model and torch left as they were."""

from __future__ import annotations

import torch
from torch import nn

from trainonce.metrics import LatencyReport, measure_latency


def small_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Dropout(),
        nn.Flatten(),
        nn.Linear(16 * 64, 10),
    )


def test_report_is_sane() -> None:
    report = measure_latency(small_model(), torch.randn(2, 3, 8, 8), warmup=2, repeats=9, threads=1)
    assert isinstance(report, LatencyReport)
    assert len(report.samples) == 9
    assert report.median > 0
    assert report.p10 <= report.median <= report.p90
    assert min(report.samples) <= report.p10 and report.p90 <= max(report.samples)


def test_modes_threads_and_grad_restored() -> None:
    model = small_model().train()
    model[1].eval()  # mixed modes must come back exactly
    threads = torch.get_num_threads()
    seen: list[tuple[bool, bool]] = []
    model.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_inference_mode_enabled())))
    measure_latency(model, (torch.randn(1, 3, 8, 8),), warmup=1, repeats=2, threads=1)
    assert seen == [(False, True)] * 3  # eval + inference_mode during the measurement
    assert model.training and not model[1].training and model[0].training
    assert torch.get_num_threads() == threads
    assert not torch.is_inference_mode_enabled()


def test_keyword_inputs() -> None:
    class Keyword(nn.Module):
        def forward(self, *, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x @ y

    report = measure_latency(
        Keyword(), {"x": torch.randn(4, 4), "y": torch.randn(4, 4)}, warmup=0, repeats=1, threads=1
    )
    assert report.p10 == report.median == report.p90 > 0
