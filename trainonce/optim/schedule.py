"""When a pruning optimizer acts, in optimizer steps: warm-up, pruning window, fine-tuning.

Shared by ``trainonce demo``, ``trainonce prune`` and the Trainer/Lightning callbacks: all know only the total number of steps
and split it by fractions, so that a longer run scales every phase alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainonce.errors import TrainonceError

WARMUP_FRACTION = 0.1  # steps of plain training before the optimizer starts choosing groups
PRUNING_FRACTION = 0.3  # steps over which the chosen groups are projected to zero (then fine-tuning)
PERIODS = 10


@dataclass(frozen=True)
class Schedule:
    """Warm-up until ``start_step``, ``pruning_steps`` in ``periods`` parts, then fine-tuning."""

    total_steps: int
    start_step: int
    pruning_steps: int
    periods: int

    @property
    def end_step(self) -> int:
        return self.start_step + self.pruning_steps


def make_schedule(total_steps: int, periods: int = PERIODS, warmup: float = WARMUP_FRACTION,
                  window: float = PRUNING_FRACTION) -> Schedule:
    """Fractions of ``total_steps``; fewer periods when the window is too short for ``periods``."""
    if not (0.0 <= warmup < 1.0 and 0.0 < window < 1.0 and warmup + window < 1.0):
        raise TrainonceError(f"warm-up ({warmup}) and pruning window ({window}) must be fractions of the run "
                             "that leave room for fine-tuning (warmup + window < 1)")
    start = max(1, round(warmup * total_steps))
    pruning = max(1, round(window * total_steps))
    periods = max(1, min(periods, pruning))
    pruning -= pruning % periods  # HESSO's periods are pruning_steps // periods steps long
    if start + pruning >= total_steps:
        raise TrainonceError(f"{total_steps} training steps are too few for a warm-up, a pruning window and "
                             "fine-tuning: train for more epochs or use a smaller batch size")
    return Schedule(total_steps, start, pruning, periods)
