"""``SearchSpace.construct``: choose the redundant set, build, verify, explain failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainonce.construct.build import build_compact
from trainonce.construct.plan import kept_masks
from trainonce.construct.verify import RELATIVE_TOLERANCE, max_output_difference, within_tolerance
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


def construct(space: SearchSpace, redundant: Redundant | None, verify: bool) -> nn.Module:
    redundant = resolve_redundant(space, redundant)
    by_id = {g.id: g for g in space.node_groups}
    for group_id, indices in redundant.items():
        group = by_id.get(group_id)
        if group is None or not group.prunable:
            raise ConstructionError(f"node group {group_id} is not prunable and cannot be removed")
        if len(indices) >= group.size:
            raise ConstructionError(f"node group {group_id} ({group.name}) would lose all {group.size} channels")
    compact = build_compact(space, kept_masks(space.node_groups, redundant))
    if verify:
        diff, scale = max_output_difference(space.model, compact, space.inputs)
        if not within_tolerance(diff, scale):
            culprit = _find_culprit(space, redundant)
            raise ConstructionError(
                f"the compact model differs from the zeroed model by {diff:.3g} (allowed "
                f"{RELATIVE_TOLERANCE:g} x max(1, {scale:.3g})); {culprit}. Please report this model: "
                f"exclude the named module with analyze(..., exclude=[...]) meanwhile."
            )
    return compact


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
    for group_id, indices in redundant.items():
        compact = build_compact(space, kept_masks(space.node_groups, {group_id: indices}))
        diff, scale = max_output_difference(space.model, compact, space.inputs)
        if not within_tolerance(diff, scale):
            group = next(g for g in space.node_groups if g.id == group_id)
            return f"removing node group {group_id} ({group.name}) alone already differs by {diff:.3g}"
    return "no single node group reproduces the difference (an interaction between groups)"
