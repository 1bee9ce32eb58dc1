"""A flat, vectorised view of the prunable groups over the optimizer's parameters.

The search space describes groups per node group (``NodeGroup.producers``: which positions of
which parameter belong to which channel). An optimizer needs the opposite direction, fast: for
every parameter, which *global* group each position along its pruned dimension belongs to. That
is one ``LongTensor`` per parameter (``-1`` where no prunable group lives), built once, so the
per-step work is a few indexed kernels per parameter and never a Python loop over channels.

Groups are numbered ``0..N-1`` in node-group order; group ``offset[j] + c`` is channel ``c`` of
node group ``j``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import Redundant, SearchSpace
from trainonce.groups.space import NodeGroup


@dataclass(eq=False)
class ParamRows:
    """The positions of ``param`` along ``dim`` and the global group of each (``-1``: none)."""

    param: torch.Tensor
    dim: int
    gid: torch.Tensor  # (param.shape[dim],) long, on param.device

    def per_position(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like ``param``) as a 2-D (positions along ``dim``, rest) matrix."""
        return tensor.movedim(self.dim, 0).reshape(tensor.shape[self.dim], -1)

    def positions(self, chosen: torch.Tensor) -> torch.Tensor:
        """Positions along ``dim`` whose group is set in the boolean vector ``chosen`` (N,)."""
        mask = chosen.to(self.gid.device)[self.gid.clamp(min=0)] & (self.gid >= 0)
        return torch.nonzero(mask).squeeze(1)


class GroupIndex:
    """Global numbering of the prunable groups that an optimizer can train.

    A node group is included only when every parameter producing it is optimised by ``params``
    (by identity) and requires grad: a group the optimizer cannot move cannot be decayed to zero
    or held there, so it is left alone and the reason is recorded in ``notes``.
    """

    def __init__(self, space: SearchSpace, params: Iterable[torch.Tensor]) -> None:
        optimised = {id(p) for p in params if p.requires_grad}
        self.space = space
        self.notes: list[str] = []
        self.node_groups: list[NodeGroup] = []
        for group in space.prunable_groups:
            outside = [s.value.label for s in group.producers if id(s.tensor) not in optimised]
            if outside:
                self.notes.append(f"node group {group.id} ({group.name}) skipped: {outside[0]} is not trained by the optimizer")
            else:
                self.node_groups.append(group)
        if not self.node_groups:
            reason = f" ({self.notes[0]})" if self.notes else ""
            raise TrainonceError(
                f"{space.graph.model_name} has no prunable group that the optimizer trains{reason}; "
                "check space.summary() for why channels are frozen, and pass model.parameters() to the base optimizer")
        sizes = torch.tensor([g.size for g in self.node_groups])
        self.offsets = torch.cumsum(sizes, 0) - sizes
        self.num_groups = int(sizes.sum())
        self.owner = torch.repeat_interleave(torch.arange(len(self.node_groups)), sizes)
        self.channel = torch.arange(self.num_groups) - self.offsets[self.owner]
        self.rows = self._rows()
        self.numel = self._numel()

    def _rows(self) -> list[ParamRows]:
        merged: dict[tuple[int, int], ParamRows] = {}
        for j, group in enumerate(self.node_groups):
            offset = int(self.offsets[j])
            for piece in group.producers:
                tensor = piece.tensor
                key = (id(tensor), piece.dim)
                rows = merged.get(key)
                if rows is None:
                    gid = torch.full((tensor.shape[piece.dim],), -1, dtype=torch.long)
                    rows = merged[key] = ParamRows(tensor, piece.dim, gid)
                inside = piece.index >= 0
                rows.gid[inside] = piece.index[inside] + offset
        for rows in merged.values():
            rows.gid = rows.gid.to(rows.param.device)
        return list(merged.values())

    def _numel(self) -> torch.Tensor:
        """Number of scalars in each group (``n_g``)."""
        counts = torch.zeros(self.num_groups, dtype=torch.float64)
        for rows in self.rows:
            per_position = rows.param.numel() // max(1, rows.param.shape[rows.dim])
            valid = rows.gid >= 0
            counts.index_add_(0, rows.gid[valid].cpu(), torch.full((int(valid.sum()),), float(per_position), dtype=torch.float64))
        return counts

    # -- reductions -------------------------------------------------------------------------
    def scatter(self, per_rows: list[torch.Tensor]) -> torch.Tensor:
        """Sum per-position values (one vector per ``ParamRows``) into a float64 (N,) vector."""
        total = torch.zeros(self.num_groups, dtype=torch.float64)
        for rows, values in zip(self.rows, per_rows, strict=True):
            valid = rows.gid >= 0
            total.index_add_(0, rows.gid[valid].cpu(), values[valid].double().cpu())
        return total

    @torch.no_grad()
    def squared_norms(self) -> torch.Tensor:
        """``||x_g||^2`` of every group, from the live parameters."""
        return self.scatter([rows.per_position(rows.param.detach()).float().pow(2).sum(1) for rows in self.rows])

    # -- conversions ------------------------------------------------------------------------
    def redundant(self, chosen: torch.Tensor) -> Redundant:
        """The ``SearchSpace`` form (node group id -> channel indices) of a boolean (N,) vector."""
        picked = torch.nonzero(chosen.cpu()).squeeze(1)
        out: Redundant = {}
        for j in torch.unique(self.owner[picked]).tolist():
            in_group = picked[self.owner[picked] == j]
            out[self.node_groups[j].id] = self.channel[in_group]
        return out
