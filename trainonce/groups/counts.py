"""Group counts construction must be able to rewrite, or the digit they count stays frozen.

Removing a whole group of a grouped convolution or of a group normalisation changes the number
of groups, which the compact model reads from an attribute of the module that ran the op
(``groups``, ``num_groups``). Where the number does not live in such an attribute (a literal in a
functional call, an attribute of another name) the new count cannot be written, and the shape
probe cannot notice (a ``GroupNorm`` with the old count still runs, on groups of the wrong
width), so the group digit is frozen here, at analysis.
"""

from __future__ import annotations

from torch import nn

from trainonce.groups.propagate import Propagation


def freeze_fixed_counts(model: nn.Module, p: Propagation) -> None:
    modules = dict(model.named_modules(remove_duplicate=False))
    for norm in p.group_norms:
        if getattr(modules.get(norm.module), "num_groups", None) != norm.num_groups:
            p.freeze(norm.group_layout, f"the {norm.num_groups} normalisation groups at '{norm.module or 'the root'}' are "
                                        "not a num_groups attribute construction could rewrite")
    for conv in p.convs:
        if conv.group_layout is None:
            continue
        owner = conv.weight.fqns[0].rpartition(".")[0] if conv.weight.fqns else None
        if owner is None or getattr(modules.get(owner), "groups", None) != conv.groups:
            p.freeze(conv.group_layout, f"the {conv.groups} groups of the convolution with weight '{conv.weight.label}' "
                                        "are not a groups attribute construction could rewrite")
