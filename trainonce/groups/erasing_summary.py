"""The text table of an erasing search space: segments, erasable or why not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainonce.groups.segments import SegmentKind
from trainonce.metrics.params import count_parameters

if TYPE_CHECKING:
    from trainonce.groups.erasing import ErasingSpace


def summarize_erasing(space: ErasingSpace, max_rows: int = 60) -> str:
    erasing = space.erasing
    chains = [s for s in erasing.segments if s.kind is SegmentKind.CHAIN and s.parameters]
    total_macs = max(1.0, erasing.total("macs"))
    joints = sum(1 for s in erasing.segments if s.kind is SegmentKind.JOINT)
    lines = [
        f"{space.graph.model_name}: {len(space.graph.nodes)} ops, {count_parameters(space.model):,} parameters",
        f"segments: {len(erasing.segments)} ({joints} joints, {len(chains)} with parameters), "
        f"erasable (GeZIGs) N = {len(erasing.candidates)}",
        "",
        f"{'id':>4}  {'erasable':<8}  {'params':>9}  {'MACs %':>6}  segment / ops / reason",
    ]
    ordered = sorted(chains, key=lambda s: (not s.erasable, s.id))
    for segment in ordered[:max_rows]:
        params = int(erasing.segment_cost(segment, "params"))
        share = 100.0 * erasing.segment_cost(segment, "macs") / total_macs
        detail = f"{segment.name}  ({segment.ops if len(segment.nodes) <= 6 else segment.ops[:60] + ' ...'})"
        if not segment.erasable:
            detail += f"  [{segment.reason}]"
        lines.append(f"{segment.id:>4}  {'yes' if segment.erasable else 'no':<8}  {params:>9,}  {share:>6.2f}  {detail}")
    if len(ordered) > max_rows:
        lines.append(f"  ... {len(ordered) - max_rows} more segments with parameters")
    lines.extend(space.notes)
    return "\n".join(lines)
