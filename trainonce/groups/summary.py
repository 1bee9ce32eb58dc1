"""The text table of a search space, and the per-group facts it shows (shared with the pictures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainonce.graph.ir import ValueKind
from trainonce.metrics.macs import DEFAULT_EXCLUDED, count_macs, node_macs
from trainonce.metrics.params import count_parameters

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace


def producer_macs(space: SearchSpace) -> tuple[dict[int, int], int]:
    """MACs of the ops whose parameters produce each node group, and the model's total.

    The producing ops are what a group's channels cost to compute (a conv's output channels, a
    linear's heads), so their share says how much compute the group stands for. An op that
    produces two groups (heads and head_dim of one projection) counts for both. Same convention
    as ``count_macs`` (norm layers excluded).
    """
    producing: dict[int, set[int]] = {}  # parameter value id -> node groups it produces
    for group in space.node_groups:
        for piece in group.producers:
            producing.setdefault(piece.value.id, set()).add(group.id)
    macs = {group.id: 0 for group in space.node_groups}
    for node in space.graph.nodes:
        family, cost = node_macs(node)
        if family is None or family in DEFAULT_EXCLUDED:
            continue
        groups = {g for v in node.inputs if v.kind is ValueKind.PARAMETER for g in producing.get(v.id, ())}
        for group_id in groups:
            macs[group_id] += cost
    return macs, count_macs(space.graph).total


def summarize(space: SearchSpace, max_rows: int = 60) -> str:
    groups = space.node_groups
    total_params = count_parameters(space.model)
    macs, total_macs = producer_macs(space)
    lines = [
        f"{space.graph.model_name}: {len(space.graph.nodes)} ops, {total_params:,} parameters",
        f"node groups: {len(groups)} ({len(space.prunable_groups)} prunable), prunable groups N = {space.num_prunable:,}",
        "",
        f"{'id':>4}  {'channels':>8}  {'params/ch':>9}  {'MACs %':>6}  {'prunable':<8}  modules / reason",
    ]
    ordered = sorted(groups, key=lambda g: (not g.prunable, g.id))
    for group in ordered[:max_rows]:
        detail = group.name or "-"
        if not group.prunable:
            detail += f"  [{group.reason}]"
        share = 100.0 * macs[group.id] / max(1, total_macs)
        lines.append(f"{group.id:>4}  {group.size:>8}  {group.params_per_channel():>9,}  {share:>6.2f}  "
                     f"{'yes' if group.prunable else 'no':<8}  {detail}")
    if len(ordered) > max_rows:
        lines.append(f"  ... {len(ordered) - max_rows} more node groups")
    unknown = space.propagation.unknown_ops
    if unknown:
        lines.append("unknown ops (their channels are frozen): " + ", ".join(f"{op} x{n}" for op, n in sorted(unknown.items())))
    lines.extend(space.notes)
    return "\n".join(lines)
