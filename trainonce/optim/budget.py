"""Parameter and MAC budgets: what removing a set of groups saves, exactly for weights.

A weight loses whole slices along each of its dimensions (a conv loses output rows with its own
channels and input columns with its producer's channels), so the fraction it keeps is the
product over its dimensions of the fraction of positions kept. That makes the saving of any set
of groups exact for parameters and for the MACs of every weighted op (a conv's or linear's MACs
are proportional to its weight's size at fixed activation size). MACs of weight-free products
(attention ``q @ k^T``) are not credited, so a FLOPs budget is met with a small margin.

For ranking, each group also gets a linear cost (its share of every weight it touches); the
budget loop re-measures the exact saving after each round, because the linear costs of two
adjacent channels overlap at the weight entries they share.
"""

from __future__ import annotations

import torch

from trainonce.errors import TrainonceError
from trainonce.graph.ir import ValueKind
from trainonce.metrics.macs import count_macs, node_macs
from trainonce.metrics.params import count_parameters
from trainonce.optim.group_index import GroupIndex


def one_target(**targets: float | None) -> tuple[str, float]:
    """The single target given (``target_sparsity``, ``target_params`` or ``target_flops``), checked."""
    given = {name: value for name, value in targets.items() if value is not None}
    if len(given) != 1:
        raise TrainonceError(f"give exactly one of {', '.join(targets)} (got {sorted(given) or 'none'})")
    (name, value), = given.items()
    if not 0.0 < value < 1.0:
        raise TrainonceError(f"{name} must be in (0, 1), got {value}")
    return name, value


def check_reachable(name: str, target: float, reachable: float, total: float, condition: str) -> None:
    """A budget the frozen parts make unreachable is an error now, not a model cut to the bone later."""
    if total <= 0 or target * total > reachable * (1 + 1e-9):
        share = reachable / total if total > 0 else 0.0
        what = "parameters" if name == "target_params" else "MACs"
        raise TrainonceError(
            f"{name}={target} asks to remove {target:.1%} of the model's {what}, but at most {share:.1%} can go {condition}: "
            f"the rest sits in frozen parts (space.summary() says why each is frozen). Lower the target to at most "
            f"{share:.3f}, or unfreeze what analyze(..., exclude=...) keeps")


class CostModel:
    """Cost (parameters or MACs) of the weights the prunable groups touch."""

    def __init__(self, index: GroupIndex, kind: str) -> None:
        space = index.space
        if kind == "params":
            self.total = float(count_parameters(space.model))
            weight_of = {v.id: 1.0 for v in space.graph.values if v.kind is ValueKind.PARAMETER}
        else:
            self.total = float(count_macs(space.graph).total)
            weight_of = _mac_reuse(index)
        # (numel x weight, [gid per position for each sliced dim])
        self.weights: dict[int, tuple[float, dict[int, torch.Tensor]]] = {}
        for j, group in enumerate(index.node_groups):
            offset = int(index.offsets[j])
            for piece in [*group.producers, *group.consumers]:
                value = piece.value
                if value.kind is not ValueKind.PARAMETER or value.id not in weight_of:
                    continue
                numel = float(piece.tensor.numel()) * weight_of[value.id]
                dims = self.weights.setdefault(value.id, (numel, {}))[1]
                gid = dims.setdefault(piece.dim, torch.full((piece.tensor.shape[piece.dim],), -1, dtype=torch.long))
                inside = piece.index >= 0
                gid[inside] = piece.index[inside] + offset
        self.per_group = torch.zeros(index.num_groups, dtype=torch.float64)
        for numel, dims in self.weights.values():
            for gid in dims.values():
                valid = gid >= 0
                self.per_group.index_add_(0, gid[valid], torch.full((int(valid.sum()),), numel / len(gid), dtype=torch.float64))

    def removed(self, chosen: torch.Tensor) -> float:
        """Exact cost saved by removing the groups set in ``chosen`` (N,)."""
        saved = 0.0
        for numel, dims in self.weights.values():
            kept = 1.0
            for gid in dims.values():
                gone = (gid >= 0) & chosen[gid.clamp(min=0)]
                kept *= 1.0 - float(gone.sum()) / len(gid)
            saved += numel * (1.0 - kept)
        return saved


def _mac_reuse(index: GroupIndex) -> dict[int, float]:
    """MACs per weight element for every parameter that is the weight of a counted op."""
    counted = count_macs(index.space.graph)
    excluded = set(counted.excluded)
    reuse: dict[int, float] = {}
    for node in index.space.graph.nodes:
        family, macs = node_macs(node)
        if family is None or macs == 0 or family in excluded:
            continue
        weights = [v for v in node.inputs if v.kind is ValueKind.PARAMETER and v.tensor is not None]
        if weights:
            weight = max(weights, key=lambda v: v.tensor.numel() if v.tensor is not None else 0)
            assert weight.tensor is not None
            reuse[weight.id] = reuse.get(weight.id, 0.0) + macs / max(1, weight.tensor.numel())
    return reuse
