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
    for path, tensors in by_module.items():
        module = modules.get(path)
        if module is None:
            continue
        handled = _standard_widths(module, tensors)
        if path in conv_groups:
            record = conv_groups[path]
            # recorded mid-propagation: later unions (a bias, a residual) may have moved the root atoms
            groups = record.groups if record.group_layout is None else kept_size(p.atoms.normalize(record.group_layout), kept)
            _conv_widths(module, groups, record.transposed)
            handled |= {"in_channels", "out_channels", "groups"}
        if any(record.module == path for record in p.group_norms):
            handled |= {"num_groups", "num_channels"}  # set below, with or without affine tensors
        _matching_ints(module, tensors, handled)
    for record_gn in p.group_norms:  # an affine-free GroupNorm has no tensor to notice it by
        module = modules.get(record_gn.module)
        groups = kept_size(p.atoms.normalize(record_gn.group_layout), kept)
        if module is not None and groups != record_gn.num_groups:
            _set(module, num_groups=groups, **({"num_channels": groups * record_gn.width} if hasattr(module, "num_channels") else {}))
    for atom_id, names in head_atoms.items():
        mask = kept.get(atom_id)
        if mask is None:
            continue
        scope = _common_prefix([n.rpartition(".")[0] for n in names])
        root = modules.get(scope, compact)
        _scale_heads(root.modules(), head_sizes[atom_id], int(mask.sum()))


CONFIG_HEAD_FIELDS = ("num_attention_heads", "num_key_value_heads", "n_head", "num_heads", "encoder_attention_heads",
                      "decoder_attention_heads")
CONFIG_WIDTH_FIELDS = ("intermediate_size", "n_inner", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff")


def update_config(compact: nn.Module, kept: Kept, sizes: dict[int, int], head_atom_ids: set[int]) -> None:
    """Keep a HuggingFace ``config`` consistent where every layer was pruned alike.

    A config holds one width for all layers; it is updated only when all node groups of that
    width kept the same number of channels (heads: the same fraction). Otherwise the per-layer
    widths live in the modules and the config keeps the original numbers.
    """
    config = getattr(compact, "config", None)
    if config is None:
        return
    heads = {atom: int(kept[atom].sum()) if atom in kept else sizes[atom] for atom in head_atom_ids}
    # Without an explicit ``head_dim`` the model derives it as hidden_size / num_heads (BERT,
    # GPT-2): fewer heads in the config would mean wider heads, so the count must stay.
    states_head_dim = isinstance(getattr(config, "head_dim", None), int)
    if states_head_dim and heads and len({(sizes[a], k) for a, k in heads.items()}) == 1:
        size, count = sizes[next(iter(heads))], next(iter(heads.values()))
        for field in CONFIG_HEAD_FIELDS:
            value = getattr(config, field, None)
            if isinstance(value, int) and value % size == 0:
                setattr(config, field, value // size * count)
    for field in CONFIG_WIDTH_FIELDS:
        value = getattr(config, field, None)
        if not isinstance(value, int):
            continue
        same_width = [a for a, s in sizes.items() if s == value and a not in head_atom_ids]
        counts = {int(kept[a].sum()) if a in kept else value for a in same_width}
        if same_width and len(counts) == 1:
            setattr(config, field, counts.pop())


def _standard_widths(module: nn.Module, tensors: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> set[str]:
    handled: set[str] = set()
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        if weight.ndim == 2 and hasattr(module, "in_features") and hasattr(module, "out_features"):
            handled |= _set(module, out_features=weight.shape[0], in_features=weight.shape[1])
        if weight.ndim == 2 and hasattr(module, "embedding_dim"):
            handled |= _set(module, num_embeddings=weight.shape[0], embedding_dim=weight.shape[1])
        if hasattr(module, "normalized_shape"):
            handled |= _set(module, normalized_shape=tuple(weight.shape))
        if hasattr(module, "num_channels") and weight.ndim == 1:
            handled |= _set(module, num_channels=weight.shape[0])
    per_channel = weight if isinstance(weight, torch.Tensor) and weight.ndim == 1 else getattr(module, "running_mean", None)
    if hasattr(module, "num_features") and isinstance(per_channel, torch.Tensor):
        handled |= _set(module, num_features=per_channel.shape[0])
    return handled


def _set(module: nn.Module, **values: object) -> set[str]:
    for name, value in values.items():
        setattr(module, name, value)
    return set(values)


def _conv_widths(module: nn.Module, groups: int, transposed: bool) -> None:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    if transposed:
        in_channels, out_channels = weight.shape[0], weight.shape[1] * groups
    else:
        in_channels, out_channels = weight.shape[1] * groups, weight.shape[0]
    widths = {"groups": groups, "in_channels": in_channels, "out_channels": out_channels}
    _set(module, **{name: value for name, value in widths.items() if hasattr(module, name)})


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
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return ".".join(prefix)
