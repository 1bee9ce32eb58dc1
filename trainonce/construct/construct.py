"""``SearchSpace.construct``: choose the redundant set, build, verify, explain failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainonce.construct.build import build_compact
from trainonce.construct.plan import kept_masks
from trainonce.construct.verify import Verdict, verify
from trainonce.errors import ConstructionError

if TYPE_CHECKING:
    from trainonce.groups.search_space import Redundant, SearchSpace


def resolve_redundant(space: SearchSpace, redundant: Redundant | None) -> Redundant:
    """The groups to remove: the given ones (checked to be exactly zero in the model) or the zero ones."""
    zeros = space.redundant_from_zeros()
    if redundant is None:
        return zeros
    redundant = {int(k): torch.as_tensor(v, dtype=torch.long) for k, v in redundant.items() if len(v)}
    check_agreement(space, redundant, zeros)
    return redundant


def construct(space: SearchSpace, redundant: Redundant | None, verify_output: bool) -> nn.Module:
    redundant = resolve_redundant(space, redundant)
    by_id = {g.id: g for g in space.node_groups}
    for group_id, indices in redundant.items():
        group = by_id.get(group_id)
        if group is None or not group.prunable:
            raise ConstructionError(f"node group {group_id} is not prunable and cannot be removed")
        if len(indices) >= group.size:
            raise ConstructionError(f"node group {group_id} ({group.name}) would lose all {group.size} channels")
    try:
        compact = build_compact(space, kept_masks(space.node_groups, redundant))
    except Exception as error:
        raise ConstructionError(f"building the compact model failed ({type(error).__name__}: {error}); "
                                f"{_find_culprit(space, redundant)}. {REPORT}") from error
    if verify_output:
        verdict = verify(space.model, compact, space.inputs)
        if not verdict.exact:
            raise ConstructionError(failure_message(verdict, lambda: _find_culprit(space, redundant)))
    return compact


REPORT = ("Please report this model; meanwhile exclude the named module with analyze(..., exclude=[...]) "
          "(or pass probe=True, the default, which tries every group before training)")


def failure_message(verdict: Verdict, culprit: object) -> str:
    """Why verification failed; a model that is itself broken is not blamed on a group."""
    if "the full model" in verdict.detail or "of the full model" in verdict.detail:
        return (f"cannot verify the compact model {verdict.describe()}. The zeroed model must run on the example "
                "inputs with finite outputs: check the inputs, and whether training diverged (NaN weights)")
    return f"the compact model does not reproduce the zeroed model {verdict.describe()}; {culprit()}. {REPORT}"  # type: ignore[operator]


def check_agreement(space: SearchSpace, redundant: Redundant, zeros: Redundant) -> None:
    for group_id, indices in redundant.items():
        found = set(zeros.get(group_id, torch.zeros(0, dtype=torch.long)).tolist())
        missing = sorted(set(indices.tolist()) - found)
        if missing:
            group = next(g for g in space.node_groups if g.id == group_id)
            raise ConstructionError(
                f"groups {missing[:8]} of node group {group_id} ({group.name}) are marked redundant "
                "but their weights are not exactly zero in the model; the optimizer state and the "
                "model disagree (was the model changed after pruning, or another model passed?)"
            )


def _find_culprit(space: SearchSpace, redundant: Redundant) -> str:
    """The first node group whose removal alone already breaks the model."""
    for group_id, indices in redundant.items():
        group = next(g for g in space.node_groups if g.id == group_id)
        try:
            compact = build_compact(space, kept_masks(space.node_groups, {group_id: indices}))
        except Exception as error:
            return f"removing node group {group_id} ({group.name}) alone fails to build: {type(error).__name__}: {error}"
        verdict = verify(space.model, compact, space.inputs)
        if not verdict.exact:
            return f"removing node group {group_id} ({group.name}) alone already fails {verdict.describe()}"
    return "no single node group reproduces the failure (an interaction between groups)"
