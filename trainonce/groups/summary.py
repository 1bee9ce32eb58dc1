"""The text table of a search space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainonce.metrics.params import count_parameters

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace


def summarize(space: SearchSpace, max_rows: int = 60) -> str:
    groups = space.node_groups
    total_params = count_parameters(space.model)
    lines = [
        f"{space.graph.model_name}: {len(space.graph.nodes)} ops, {total_params:,} parameters",
        f"node groups: {len(groups)} ({len(space.prunable_groups)} prunable), prunable groups N = {space.num_prunable:,}",
        "",
        f"{'id':>4}  {'channels':>8}  {'params/ch':>9}  {'prunable':<8}  modules / reason",
    ]
    ordered = sorted(groups, key=lambda g: (not g.prunable, g.id))
    for group in ordered[:max_rows]:
        detail = group.name or "-"
        if not group.prunable:
            detail += f"  [{group.reason}]"
        lines.append(f"{group.id:>4}  {group.size:>8}  {group.params_per_channel():>9,}  {'yes' if group.prunable else 'no':<8}  {detail}")
    if len(ordered) > max_rows:
        lines.append(f"  ... {len(ordered) - max_rows} more node groups")
    unknown = space.propagation.unknown_ops
    if unknown:
        lines.append("unknown ops (their channels are frozen): " + ", ".join(f"{op} x{n}" for op, n in sorted(unknown.items())))
    lines.extend(space.notes)
    return "\n".join(lines)
