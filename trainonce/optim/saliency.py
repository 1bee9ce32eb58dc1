"""HESSO's saliency score: five normalised criteria, lower = more redundant.

For group ``g`` with weights ``x_g`` (``n_g`` scalars) and update direction ``d_g`` (the step
the base optimizer just took is ``x <- x - lr * d``):

* ``magnitude``      ``||x_g||``
* ``avg_magnitude``  ``||x_g|| / n_g``
* ``cosine``         ``cos(x_g, d_g) + 1``  (in [0, 2]; high = the step shrinks the group)
* ``taylor_first``   ``|<x_g, d_g>|``
* ``taylor_second``  ``0.5 <x_g, d_g>^2``

Each criterion is divided by its L2 norm over the candidate groups, then weighted. The default
weights are 0.2 each, with the reference implementation's sign convention: a high cosine counts
as *important*. A negative weight flips a criterion (high value = redundant), which is how the
DHSPG convention for the cosine is expressed; the quality benchmark compares both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from trainonce.errors import TrainonceError

CRITERIA = ("magnitude", "avg_magnitude", "cosine", "taylor_first", "taylor_second")
DEFAULT_IMPORTANCE: Mapping[str, float] = {name: 0.2 for name in CRITERIA}
_EPS = 1e-12


@dataclass(frozen=True)
class GroupStatistics:
    """The three inner products every criterion is made of, per group (float64, on CPU)."""

    xx: torch.Tensor  # ||x_g||^2
    xd: torch.Tensor  # <x_g, d_g>
    dd: torch.Tensor  # ||d_g||^2
    numel: torch.Tensor  # n_g


def check_importance(importance: Mapping[str, float] | None) -> dict[str, float]:
    """Validate user weights (unknown names are an error, not silently ignored)."""
    weights = dict(DEFAULT_IMPORTANCE if importance is None else importance)
    unknown = sorted(set(weights) - set(CRITERIA))
    if unknown:
        raise TrainonceError(f"unknown importance criteria {unknown}; choose from {list(CRITERIA)}")
    if not any(w != 0 for w in weights.values()):
        raise TrainonceError("importance needs at least one criterion with a nonzero weight")
    return {name: float(w) for name, w in weights.items()}


def criteria(stats: GroupStatistics) -> dict[str, torch.Tensor]:
    """Raw value of every criterion for every group."""
    norm_x = stats.xx.clamp(min=0).sqrt()
    norm_d = stats.dd.clamp(min=0).sqrt()
    return {
        "magnitude": norm_x,
        "avg_magnitude": norm_x / stats.numel.clamp(min=1),
        "cosine": stats.xd / (norm_x * norm_d).clamp(min=_EPS) + 1.0,
        "taylor_first": stats.xd.abs(),
        "taylor_second": 0.5 * stats.xd.pow(2),
    }


def saliency(stats: GroupStatistics, weights: Mapping[str, float], candidates: torch.Tensor) -> torch.Tensor:
    """Weighted sum of criteria, each normalised over ``candidates`` (a boolean (N,) mask).

    Groups outside ``candidates`` get ``+inf`` so that no selection can pick them.
    """
    raw = criteria(stats)
    score = torch.zeros_like(stats.xx)
    for name, weight in weights.items():
        if weight == 0:
            continue
        value = raw[name]
        scale = value[candidates].pow(2).sum().sqrt().clamp(min=_EPS)
        score += weight * value / scale
    return score.masked_fill(~candidates, float("inf"))
