"""Width attributes of the compact model's modules, rewritten to match the sliced tensors.

Modules read some widths in ``forward`` (``groups`` of a conv, ``normalized_shape``,
``num_groups`` of GroupNorm, head counts used in reshapes, GPT-2 ``Conv1D.nf``) and others only
describe themselves (``in_channels``). Both are updated, by attribute *names* that PyTorch and
HuggingFace use for widths, never by module class. Heads: every head-count or attention-width
attribute inside the attention scope scales by the fraction of heads kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from trainonce.construct.plan import Kept, kept_size
from trainonce.groups.atoms import Layout
from trainonce.groups.propagate import Propagation

HEAD_ATTRIBUTES = (
    "num_heads", "num_attention_heads", "n_heads", "n_head", "heads", "num_key_value_heads", "num_kv_heads",
    "n_kv_heads", "all_head_size", "inner_dim", "split_size", "attention_dim", "inner_size",
)


def update_widths(compact: nn.Module, p: Propagation, kept: Kept, layouts: dict[int, list[Layout]],
                  changed: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], head_atoms: dict[int, list[str]],
                  head_sizes: dict[int, int]) -> None:
    """Rewrite width attributes of ``compact``.

    ``changed`` maps tensor names to (old shape, new shape); ``head_atoms`` maps a pruned head
    atom to the names of the tensors that carry it (to find the attention scope).
    """
    modules = dict(compact.named_modules())
    by_module: dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {}
    for name, shapes in changed.items():
        owner, _, leaf = name.rpartition(".")
        by_module.setdefault(owner, {})[leaf] = shapes
    conv_groups = {name.rpartition(".")[0]: record for record in p.convs for name in record.weight.fqns}
    norm_groups = {name.rpartition(".")[0]: record for record in p.group_norms if record.weight is not None
                   for name in record.weight.fqns}
    for path, tensors in by_module.items():
        module = modules.get(path)
        if module is None:
            continue
        handled = _standard_widths(module, tensors)
        if path in conv_groups:
            record = conv_groups[path]
            groups = record.groups if record.group_layout is None else kept_size(record.group_layout, kept)
            _conv_widths(module, groups, record.transposed)
            handled |= {"in_channels", "out_channels", "groups"}
        if path in norm_groups:
            record_gn = norm_groups[path]
            if hasattr(module, "num_groups"):
                module.num_groups = kept_size(record_gn.group_layout, kept)
                handled.add("num_groups")
        _matching_ints(module, tensors, handled)
    for atom_id, names in head_atoms.items():
        mask = kept.get(atom_id)
        if mask is None:
            continue
        scope = _common_prefix([n.rpartition(".")[0] for n in names])
        root = modules.get(scope, compact)
        _scale_heads(root.modules(), head_sizes[atom_id], int(mask.sum()))


def _standard_widths(module: nn.Module, tensors: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> set[str]:
    handled: set[str] = set()
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        if weight.ndim == 2 and hasattr(module, "in_features") and hasattr(module, "out_features"):
            module.out_features, module.in_features = weight.shape
            handled |= {"in_features", "out_features"}
        if weight.ndim == 2 and hasattr(module, "embedding_dim"):
            module.num_embeddings, module.embedding_dim = weight.shape
            handled |= {"num_embeddings", "embedding_dim"}
        if hasattr(module, "normalized_shape"):
            module.normalized_shape = tuple(weight.shape)
            handled.add("normalized_shape")
        if hasattr(module, "num_channels") and weight.ndim == 1:
            module.num_channels = weight.shape[0]
            handled.add("num_channels")
    per_channel = weight if isinstance(weight, torch.Tensor) and weight.ndim == 1 else getattr(module, "running_mean", None)
    if hasattr(module, "num_features") and isinstance(per_channel, torch.Tensor):
        module.num_features = per_channel.shape[0]
        handled.add("num_features")
    return handled


def _conv_widths(module: nn.Module, groups: int, transposed: bool) -> None:
    weight = module.weight
    if hasattr(module, "groups"):
        module.groups = groups
    if transposed:
        in_channels, out_channels = weight.shape[0], weight.shape[1] * groups
    else:
        in_channels, out_channels = weight.shape[1] * groups, weight.shape[0]
    if hasattr(module, "in_channels"):
        module.in_channels = in_channels
    if hasattr(module, "out_channels"):
        module.out_channels = out_channels


def _matching_ints(module: nn.Module, tensors: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], handled: set[str]) -> None:
    """Custom layers: an int attribute equal to exactly one changed size follows it."""
    changes: dict[int, set[int]] = {}
    unchanged: set[int] = set()
    for old, new in tensors.values():
        for a, b in zip(old, new, strict=True):
            (changes.setdefault(a, set()).add(b) if a != b else unchanged.add(a))
    for name, value in list(vars(module).items()):
        if name.startswith("_") or name in handled or isinstance(value, bool) or not isinstance(value, int):
            continue
        targets = changes.get(value)
        if targets is not None and len(targets) == 1 and value not in unchanged:
            setattr(module, name, next(iter(targets)))


def _scale_heads(modules: Iterable[nn.Module], size: int, kept: int) -> None:
    for module in modules:
        for name in HEAD_ATTRIBUTES:
            value = module.__dict__.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value % size == 0 and value > 0:
                setattr(module, name, value // size * kept)


def _common_prefix(paths: list[str]) -> str:
    parts = [p.split(".") if p else [] for p in paths]
    prefix: list[str] = []
    for column in zip(*parts):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return ".".join(prefix)
