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
