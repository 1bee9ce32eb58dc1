"""Training curves of a sparse-training run: loss, accuracy, group sparsity, norm of redundant groups.

The four panels are the ones that tell whether a HESSO run went as planned: the loss should
not jump when groups are projected to zero, the sparsity should climb in ``periods`` steps to its
target inside the pruning window, and the norm of the redundant groups should fall to zero by
its end. The input is a plain dict (what the demo writes to ``history.json``), so runs can be
re-plotted later without rerunning them.

History keys (lists are aligned pairwise; every key but ``step``/``loss`` is optional):

- ``step``, ``loss``: training loss per step;
- ``eval_step``, ``test_accuracy`` (fractions in [0, 1]);
- ``metrics_step``, ``group_sparsity``, ``norm_redundant``, ``norm_important``;
- ``target_sparsity``, ``pruning_start``, ``pruning_end``: drawn as guides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainonce.errors import TrainonceError


def plot_training(history: Mapping[str, Any], path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write the four-panel training figure of ``history`` to ``path`` (format from the suffix).

    Raises ``ImportError`` when matplotlib is missing (callers decide whether plots are optional)
    and :class:`TrainonceError` when the history has no loss curve.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    if not history.get("step") or len(history["step"]) != len(history.get("loss", ())):
        raise TrainonceError("history needs aligned 'step' and 'loss' lists to plot")
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    _loss_panel(axes[0, 0], history)
    _line_panel(axes[0, 1], history, "eval_step", "test_accuracy", "test accuracy", scale=100.0, unit="%")
    _line_panel(axes[1, 0], history, "metrics_step", "group_sparsity", "group sparsity", scale=100.0, unit="%")
    _norm_panel(axes[1, 1], history)
    if history.get("target_sparsity") is not None:
        axes[1, 0].axhline(100.0 * history["target_sparsity"], color="grey", linestyle="--", linewidth=1, label="target")
        axes[1, 0].legend(loc="lower right")
    for ax in axes.flat:
        _pruning_window(ax, history)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _loss_panel(ax: Any, history: Mapping[str, Any]) -> None:
    """Raw loss is noisy at small batch sizes; a moving average shows the trend across projections."""
    steps, loss = history["step"], history["loss"]
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, linewidth=0.8, label="per step")
    ax.plot(steps, _moving_average(loss, max(1, len(loss) // 50)), color="tab:blue", label="moving average")
    ax.set_yscale("log")
    ax.set_title("training loss")
    ax.legend(loc="upper right")


def _line_panel(ax: Any, history: Mapping[str, Any], x_key: str, y_key: str, title: str,
                scale: float = 1.0, unit: str = "") -> None:
    ax.set_title(f"{title} ({unit})" if unit else title)
    xs, ys = history.get(x_key) or [], history.get(y_key) or []
    if not xs or len(xs) != len(ys):
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    ax.plot(xs, [scale * y for y in ys], marker="." if len(xs) < 60 else None)


def _norm_panel(ax: Any, history: Mapping[str, Any]) -> None:
    """Redundant and important norms differ by orders of magnitude: one axis each."""
    _line_panel(ax, history, "metrics_step", "norm_redundant", "L2 norm of redundant groups")
    ax.set_ylabel("redundant groups", color="tab:blue")
    important = history.get("norm_important") or []
    if important and len(important) == len(history.get("metrics_step") or []):
        twin = ax.twinx()
        twin.plot(history["metrics_step"], important, color="tab:orange", alpha=0.6, linewidth=1)
        twin.set_ylabel("important groups", color="tab:orange")


def _pruning_window(ax: Any, history: Mapping[str, Any]) -> None:
    start, end = history.get("pruning_start"), history.get("pruning_end")
    if start is not None and end is not None:
        ax.axvspan(start, end, color="tab:red", alpha=0.07, linewidth=0)


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` values (shorter at the start, so the curve starts at step 0)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
