"""``PruningPlan``: the schedule options a trainonce optimizer class takes, fitted to the run."""

from __future__ import annotations

import pytest
import torch

import trainonce
from trainonce.errors import TrainonceError
from trainonce.integrations.plan import PruningPlan
from trainonce.optim.schedule import make_schedule


def test_only_the_options_the_user_left_out_and_the_class_takes_are_fitted() -> None:
    fitted = make_schedule(200, periods=5)
    hesso = PruningPlan(trainonce.HESSO, {"target_sparsity": 0.5, "periods": 5})
    assert hesso.schedule(200) == {"start_step": fitted.start_step, "pruning_steps": fitted.pruning_steps}
    default = make_schedule(200)  # DHSPG takes a pruning window (it ends with a final projection), not periods
    assert PruningPlan(trainonce.DHSPG, {"target_sparsity": 0.5}).schedule(200) == {"start_step": default.start_step,
                                                                                  "pruning_steps": default.pruning_steps}
    given = {"target_sparsity": 0.5, "start_step": 0, "pruning_steps": 10, "periods": 2}
    assert PruningPlan(trainonce.HESSO, given).schedule(float("inf")) == {}


def test_a_run_of_unknown_length_or_a_torch_optimizer_class_is_a_clear_error() -> None:
    with pytest.raises(TrainonceError, match="max_steps"):
        PruningPlan(trainonce.HESSO, {"target_sparsity": 0.5}).schedule(float("inf"))
    with pytest.raises(TrainonceError, match="trainonce optimizer class"):
        PruningPlan(torch.optim.SGD, {})  # type: ignore[arg-type]
