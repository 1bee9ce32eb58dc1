"""Training plots: a PNG from a history dict, partial histories tolerated, a useless one refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainonce.errors import TrainonceError
from trainonce.viz import plot_training

pytest.importorskip("matplotlib")


def fake_history(steps: int = 120) -> dict[str, object]:
    metrics_steps = list(range(0, steps, 4))
    return {
        "dataset": "fake", "target_sparsity": 0.5, "pruning_start": 12, "pruning_end": 48,
        "step": list(range(1, steps + 1)), "loss": [2.3 * math.exp(-s / 30) + 0.01 for s in range(steps)],
        "eval_step": [30, 60, 90, 120], "test_accuracy": [0.8, 0.9, 0.93, 0.95],
        "metrics_step": metrics_steps,
        "group_sparsity": [min(0.5, max(0.0, (s - 12) / 72)) for s in metrics_steps],
        "norm_redundant": [max(0.0, 5 - s / 10) for s in metrics_steps],
        "norm_important": [30.0 for _ in metrics_steps],
    }


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_writes_a_png(tmp_path: Path) -> None:
    out = plot_training(fake_history(), tmp_path / "sub" / "training.png", title="fake run")
    assert out == tmp_path / "sub" / "training.png" and is_png(out) and out.stat().st_size > 10_000


def test_only_the_loss_is_required(tmp_path: Path) -> None:
    history = {"step": [1, 2, 3], "loss": [1.0, 0.5, 0.25]}
    assert is_png(plot_training(history, tmp_path / "loss-only.png"))


def test_a_history_without_aligned_loss_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainonceError, match="aligned 'step' and 'loss'"):
        plot_training({"step": [1, 2], "loss": [1.0]}, tmp_path / "x.png")
