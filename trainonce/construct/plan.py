"""Which positions of every parameter and buffer survive, given the pruned channels."""

from __future__ import annotations

import torch

from trainonce.groups.atoms import Layout, layout_size
from trainonce.groups.space import NodeGroup

Kept = dict[int, torch.Tensor]  # atom id -> bool mask over the atom's channels


def kept_masks(groups: list[NodeGroup], redundant: dict[int, torch.Tensor]) -> Kept:
    """Bool masks of kept channels per atom from ``{node group id: pruned channel indices}``."""
    by_id = {g.id: g for g in groups}
    kept: Kept = {}
    for group_id, indices in redundant.items():
        group = by_id[group_id]
        mask = torch.ones(group.size, dtype=torch.bool)
        mask[torch.as_tensor(indices, dtype=torch.long)] = False
        kept[group.atom.id] = mask
    return kept


@torch.no_grad()
def zero_channels(groups: list[NodeGroup]) -> dict[int, torch.Tensor]:
    """``{node group id: indices}`` of the prunable channels whose producer slices are all exactly zero.

    The same answer as testing ``SearchSpace.group_norms() == 0``, whose float64 norms copy every
    producer tensor twice and were half of a 1 B-parameter model's construction time. Here each
    tensor is read once by ``any`` (a reduction with no temporary), which is exact for any value:
    denormals, NaN and inf count as non-zero, -0.0 as zero, as in the norms.
    ``SearchSpace.redundant_from_zeros`` is this function.
    """
    zeros: dict[int, torch.Tensor] = {}
    for group in groups:
        if not group.prunable:
            continue
        nonzero = torch.zeros(group.size, dtype=torch.bool)
        for piece in group.producers:
            tensor = piece.tensor.detach()
            other = tuple(d for d in range(tensor.ndim) if d != piece.dim)
            per_position = tensor.any(dim=other) if other else tensor != 0
            valid = piece.index >= 0
            nonzero[piece.index[valid & per_position.cpu()]] = True
        if not bool(nonzero.all()):
            zeros[group.id] = torch.nonzero(~nonzero).squeeze(1)
    return zeros


def kept_positions(layout: Layout, kept: Kept) -> torch.Tensor | None:
    """Indices of the surviving positions of one dimension, or None if nothing is removed."""
    if not any(a.id in kept for term in layout for a in term):
        return None
    pieces = []
    for term in layout:
        mask = torch.ones(1, dtype=torch.bool)
        for atom in term:
            digit = kept.get(atom.id, torch.ones(atom.size, dtype=torch.bool))
            mask = (mask[:, None] & digit[None, :]).reshape(-1)
        pieces.append(mask)
    return torch.cat(pieces).nonzero().squeeze(1)


def kept_size(layout: Layout, kept: Kept) -> int:
    positions = kept_positions(layout, kept)
    return layout_size(layout) if positions is None else int(positions.numel())


def slice_to_kept(tensor: torch.Tensor, layouts: list[Layout], kept: Kept) -> torch.Tensor:
    """``tensor`` with the removed positions of every dimension dropped (itself if none are)."""
    for d, layout in enumerate(layouts):
        positions = kept_positions(layout, kept)
        if positions is not None:
            tensor = tensor.index_select(d, positions.to(tensor.device))
    return tensor
