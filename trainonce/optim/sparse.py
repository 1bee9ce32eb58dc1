"""``GroupSparseOptimizer``: what every trainonce optimizer does with groups.

It wraps a base optimizer (``WrappedOptimizer``), indexes the search space's prunable groups
over the optimised parameters (``GroupIndex``), measures the base step's update direction
``d = (x_before - x_after) / lr`` group by group, and scales or zeroes groups in the weights
*and* in every optimizer state tensor shaped like them (momentum, Adam moments), so a removed
group cannot drift back.

Why it is built the way it is (``benchmarks/overhead.py`` measures it): an optimizer step is
bound by memory traffic, so the extra cost of a trainonce step is its extra passes over the
weights. A step that only scales or holds groups makes exactly one: ``_foreach_mul_`` of the
parameters that hold such groups by per-position multipliers cached for the current set of
groups, so it runs no per-parameter Python, copies nothing between host and device and
allocates nothing. (Writing zeros into the held rows alone would move less data, but on CPU
``index_fill_`` and its relatives are element-by-element loops slower than the full multiply.)
A step that measures the update direction copies the weights once before the base step, into
a scratch buffer kept while such steps recur (on CPU a fresh 100 MB allocation costs more in
page faults than the copy itself), then reduces them in cache-sized blocks of rows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import Redundant, SearchSpace
from trainonce.optim.group_index import GroupIndex
from trainonce.optim.saliency import GroupStatistics
from trainonce.optim.wrapper import WrappedOptimizer

_EXACT = (torch.float32, torch.float64)  # dtypes reduced as they are; others are reduced in float32
_BLOCK = 1 << 20  # matrix elements reduced at a time (4 MB in float32: operands and temporary stay in cache)


@dataclass(eq=False)
class _Bucket:
    """The grouped parameters of one device and dtype, so per-position work is a few flat kernels.

    ``members`` index ``GroupIndex.rows``: matrices first, then 1-D parameters (their positions
    are their elements, so all of them are reduced together after one concatenation).
    """

    device: torch.device
    dtype: torch.dtype
    members: list[int]
    num_matrices: int
    sizes: list[int]  # positions per member
    shapes: list[list[int]]  # per member: the shape that broadcasts a per-position vector over it
    dims: list[tuple[int, ...]]  # per member: the dimensions summed to get one value per position
    gid: torch.Tensor  # (sum(sizes),) long, on device: group of each position, N where none
    gid_cpu: torch.Tensor  # the same on CPU, to build masks without a device round trip
    member_of: torch.Tensor  # (sum(sizes),) long, CPU: which member each position belongs to


@dataclass(eq=False)
class _Multipliers:
    """Per-position multipliers for one pattern: 0 on ``zero`` groups, ``factor`` on ``scaled`` ones, else 1.

    ``rounds`` pairs each touched parameter with a view into a flat multiplier vector of its
    bucket; a parameter indexed along two dimensions appears in two rounds (one
    ``_foreach_mul_`` must not see a tensor twice). Only the scaled positions change with
    ``factor``, rewritten in place (two small kernels per bucket) when it changes.
    """

    zero: torch.Tensor
    scaled: torch.Tensor
    factor: float
    flats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # per bucket: (multipliers, keep, scaled)
    rounds: list[tuple[list[torch.Tensor], list[torch.Tensor]]]


@dataclass(frozen=True)
class StepSums:
    """Per-group sums over the base step just taken from ``x`` (float64 (N,) on CPU).

    ``moved`` and ``lr_xx`` are what the half-space projection needs to know
    ``<x_new, x>`` without another pass over the weights: ``<x_after, x> = xx - moved``.
    """

    xx: torch.Tensor  # ||x_g||^2
    xd: torch.Tensor  # <x_g, d_g>, with d = (x - x_after) / lr of each parameter
    dd: torch.Tensor  # ||d_g||^2
    moved: torch.Tensor  # <x_g, x_g - x_after_g>
    lr_xx: torch.Tensor  # sum over the group's parameters of lr * ||x||^2
    numel: torch.Tensor  # n_g

    @property
    def statistics(self) -> GroupStatistics:
        return GroupStatistics(self.xx, self.xd, self.dd, self.numel)


class GroupSparseOptimizer(WrappedOptimizer):
    """Base of HESSO, DHSPG, ...; subclasses define ``zero_mask`` and their step."""

    # Erasing spaces restrict which sets may be removed together (hierarchical selection);
    # only optimizers that select through ``space.erasing`` may drive them.
    supports_erasing = False

    def __init__(self, base: Optimizer, space: SearchSpace, *, nonfinite: str = "raise") -> None:
        super().__init__(base, nonfinite=nonfinite)
        if not isinstance(space, SearchSpace):
            raise TrainonceError(f"space must come from trainonce.analyze(model, inputs), got {type(space).__name__}")
        if space.erasing is not None and not self.supports_erasing:
            raise TrainonceError(f"{type(self).__name__} does not keep erased segments connected; use trainonce.H2SPG or "
                                 "trainonce.HESSO with a space from analyze(..., mode='erase')")
        self.space = space
        self.index = GroupIndex(space, (p for group in self.param_groups for p in group["params"]))
        self._buckets = self._make_buckets()
        self._no_groups = torch.zeros(self.index.num_groups, dtype=torch.bool)
        # Caches, never state: both are rebuilt on demand and dropped by load_state_dict.
        self._multipliers: _Multipliers | None = None
        self._scratch: list[torch.Tensor] | None = None

    def new_state(self, **entries: Any) -> dict[str, Any]:
        """Create this optimizer's state entry (``num_groups`` guards against loading a foreign one)."""
        for key in [k for k in self.state if isinstance(k, str)]:  # a base is driven by one trainonce optimizer at a time
            del self.state[key]  # type: ignore[arg-type]
        state = {"step": 0, "skipped_steps": 0, "num_groups": self.index.num_groups,
                 "hyperparameters": self.hyperparameters(), **entries}
        self.state[self.STATE_KEY] = state  # type: ignore[index]
        return state

    def hyperparameters(self) -> dict[str, Any]:
        """The settings a saved state is valid only with: targets, schedule, importance, divisibility.

        Stored in the state and compared on load, so a run resumed with other settings is refused
        instead of continuing a schedule it was not planned for.
        """
        return {}

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a state that does not belong to this optimizer, before anything is changed."""
        super().check_state_dict(state_dict)
        own = state_dict["state"][self.STATE_KEY]
        name = type(self).__name__
        if not isinstance(own, dict) or own.get("num_groups") != self.index.num_groups:
            saved = own.get("num_groups") if isinstance(own, dict) else None
            raise TrainonceError(f"the saved {name} state has {saved} groups but this search space has "
                                 f"{self.index.num_groups}: analyse the same model with the same options before loading")
        saved, current = own.get("hyperparameters"), self.hyperparameters()
        if saved is not None and saved != current:
            differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in differing)
            raise TrainonceError(f"the saved {name} state was made with other settings ({details}); construct the "
                                 "optimizer with the settings of the run that saved it")

    def after_load(self) -> None:
        state = self.state[self.STATE_KEY] = copy.deepcopy(self.own_state)  # type: ignore[index]  # never alias the caller's dict
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                state[key] = value.cpu()
        self._multipliers = None
        self._scratch = None

    def _make_buckets(self) -> list[_Bucket]:
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, rows in enumerate(self.index.rows):
            by_kind.setdefault((rows.param.device, rows.param.dtype), []).append(i)
        buckets = []
        for (device, dtype), members in by_kind.items():
            matrices = [i for i in members if self.index.rows[i].param.ndim > 1]
            ordered = matrices + [i for i in members if self.index.rows[i].param.ndim <= 1]
            sizes, shapes, dims = [], [], []
            for i in ordered:
                rows = self.index.rows[i]
                sizes.append(len(rows.gid))
                shape = [1] * rows.param.ndim
                shape[rows.dim] = -1
                shapes.append(shape)
                dims.append(tuple(d for d in range(rows.param.ndim) if d != rows.dim))
            gid = torch.cat([self.index.rows[i].gid.cpu() for i in ordered])
            gid = torch.where(gid >= 0, gid, self.index.num_groups)
            buckets.append(_Bucket(device, dtype, ordered, len(matrices), sizes, shapes, dims, gid.to(device), gid,
                                   torch.repeat_interleave(torch.arange(len(ordered)), torch.tensor(sizes))))
        return buckets

    def parameter_name(self, param: torch.Tensor) -> str:
        for name, candidate in self.space.model.named_parameters(remove_duplicate=False):
            if candidate is param:
                return f"'{name}'"
        return super().parameter_name(param)

    def base_step(self, closure: Callable[[], Any] | None) -> Any:
        loss = super().base_step(closure)
        if not self.step_taken:
            self.own_state["skipped_steps"] = self.own_state.get("skipped_steps", 0) + 1
        return loss

    # -- update direction -------------------------------------------------------------------
    def snapshot(self) -> list[torch.Tensor]:
        """Fresh copies of the grouped parameters (for a snapshot kept in ``state``)."""
        return [rows.param.detach().clone() for rows in self.index.rows]

    @torch.no_grad()
    def capture(self) -> list[torch.Tensor]:
        """The grouped parameters before the base step, copied into the scratch buffer.

        The buffer is overwritten by the next ``capture``: use the result within the step.
        It stays allocated until ``release_scratch``, which subclasses call once steps that
        measure the update direction stop recurring.
        """
        params = [rows.param for rows in self.index.rows]
        if self._scratch is None:
            self._scratch = [torch.empty_like(p, requires_grad=False) for p in params]
        torch._foreach_copy_(self._scratch, params)
        return self._scratch

    def release_scratch(self) -> None:
        """Free the scratch buffer (one copy of the grouped parameters)."""
        self._scratch = None

    @torch.no_grad()
    def step_sums(self, before: list[torch.Tensor]) -> StepSums:
        """Per-group sums for the base step just taken from ``before`` (left unchanged).

        Matrices are reduced in blocks of rows of about ``_BLOCK`` elements: per block one
        difference into a block-sized temporary, two row norms and one row dot product, so
        both operands and the difference are still in cache when they are read again. 1-D
        parameters are reduced together after one concatenation. Then one ``index_add_`` per
        bucket sums positions into groups and one copy brings the sums to the host.
        """
        lr = self.lr_of()
        n = self.index.num_groups
        total = torch.zeros(5, n, dtype=torch.float64)
        for bucket in self._buckets:
            parts = [self._matrix_sums(bucket, before)] if bucket.num_matrices else []
            if bucket.num_matrices < len(bucket.members):
                vectors = bucket.members[bucket.num_matrices:]
                compute = bucket.dtype if bucket.dtype in _EXACT else torch.float32
                x = torch.cat([before[i] for i in vectors]).to(compute)
                diff = torch.sub(x, torch.cat([self.index.rows[i].param for i in vectors]).to(compute)).double()
                x = x.double()
                parts.append(torch.stack([x.square(), diff.square(), x * diff]))
            raw_xx, raw_dd, raw_moved = torch.cat(parts, dim=1).unbind(0)
            step_size = torch.tensor([lr[id(self.index.rows[i].param)] for i in bucket.members], dtype=torch.float64)
            per_position = step_size[bucket.member_of].to(bucket.device)
            inverse = torch.where(per_position != 0, 1.0 / per_position, 0.0)  # lr = 0: no step, d = 0
            values = torch.stack([raw_xx, raw_moved * inverse, raw_dd * inverse * inverse, raw_moved, raw_xx * per_position])
            sums = torch.zeros(5, n + 1, dtype=torch.float64, device=bucket.device).index_add_(1, bucket.gid, values)
            total += sums[:, :n].cpu()
        return StepSums(total[0], total[1], total[2], total[3], total[4], self.index.numel)

    def _matrix_sums(self, bucket: _Bucket, before: list[torch.Tensor]) -> torch.Tensor:
        """``||x||^2, ||x - x_after||^2, <x, x - x_after>`` per position of the bucket's matrices: float64 (3, P)."""
        compute = bucket.dtype if bucket.dtype in _EXACT else torch.float32
        members = bucket.members[:bucket.num_matrices]
        sizes = bucket.sizes[:bucket.num_matrices]
        out = torch.empty(3, sum(sizes), dtype=compute, device=bucket.device)
        widest = max(self.index.rows[i].param.numel() // max(1, size) for i, size in zip(members, sizes, strict=True))
        temp = torch.empty(max(_BLOCK, widest), dtype=compute, device=bucket.device)
        offset = 0
        for k, (i, size) in enumerate(zip(members, sizes, strict=True)):
            rows, dims = self.index.rows[i], bucket.dims[k]
            x, after = before[i], rows.param
            if x.dtype != compute:
                x, after = x.to(compute), after.to(compute)
            block = max(1, _BLOCK // max(1, x.numel() // max(1, size)))
            for start in range(0, size, block):
                length = min(block, size - start)
                x_block, after_block = x.narrow(rows.dim, start, length), after.narrow(rows.dim, start, length)
                diff = temp[:x_block.numel()].view(x_block.shape)
                torch.sub(x_block, after_block, out=diff)
                where = slice(offset + start, offset + start + length)
                torch.linalg.vector_norm(x_block, dim=dims, out=out[0, where])
                torch.linalg.vector_norm(diff, dim=dims, out=out[1, where])
                torch.sum(diff.mul_(x_block), dim=dims, out=out[2, where])
            offset += size
        sums = out.double()
        sums[:2].square_()
        return sums

    def statistics(self, before: list[torch.Tensor]) -> GroupStatistics:
        """``||x||^2, <x, d>, ||d||^2`` per group for the step just taken from ``before``."""
        return self.step_sums(before).statistics

    @torch.no_grad()
    def add_to_groups(self, before: list[torch.Tensor], coefficient: torch.Tensor) -> None:
        """``x_g -= lr * coefficient[g] * before_g`` for every group with a nonzero coefficient.

        One ``_foreach_addcmul_`` per bucket over the parameters that hold such a group.
        """
        lr = self.lr_of()
        extended = torch.cat([coefficient.double(), torch.zeros(1, dtype=torch.float64)])
        for bucket in self._buckets:
            per_position = extended[bucket.gid_cpu]
            hit = torch.zeros(len(bucket.members), dtype=torch.long).index_add_(0, bucket.member_of, (per_position != 0).long())
            flat = per_position.to(device=bucket.device, dtype=bucket.dtype)
            params, sources, factors, scalars = [], [], [], []
            for i, chunk, shape, touched in zip(bucket.members, flat.split(bucket.sizes), bucket.shapes, hit.tolist(), strict=True):
                if touched:
                    param = self.index.rows[i].param
                    params.append(param)
                    sources.append(before[i])
                    factors.append(chunk.view(shape))
                    scalars.append(-lr[id(param)])
            if params:
                torch._foreach_addcmul_(params, sources, factors, scalars)

    # -- distributed ------------------------------------------------------------------------
    def agree(self, decision: torch.Tensor) -> torch.Tensor:
        """The same decision on every rank: rank 0's copy is broadcast.

        Under DistributedDataParallel gradients are all-reduced, so every rank computes the same
        scores; broadcasting the (small) decision guards against nondeterministic kernels
        making two ranks remove different groups, which would silently fork the model.
        """
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return decision
        device = self.index.rows[0].param.device if dist.get_backend() == "nccl" else torch.device("cpu")
        shared = decision.to(device=device, dtype=torch.uint8 if decision.dtype == torch.bool else decision.dtype).contiguous()
        dist.broadcast(shared, src=0)
        return shared.to(device=decision.device, dtype=decision.dtype)

    # -- zeroing ----------------------------------------------------------------------------
    def scale_groups(self, chosen: torch.Tensor, factor: float) -> None:
        """Multiply the groups set in ``chosen`` (bool (N,)) by ``factor``.

        ``0`` zeroes them exactly, optimizer state included: they start their held life
        without stale momentum.
        """
        if factor == 0.0:
            self.multiply(zero=chosen, with_state=True)
        else:
            self.multiply(zero=self._no_groups, scaled=chosen, factor=factor)

    @torch.no_grad()
    def multiply(self, zero: torch.Tensor, scaled: torch.Tensor | None = None, factor: float = 1.0,
                 with_state: bool = False) -> None:
        """Zero the groups set in ``zero`` and multiply those set in ``scaled`` by ``factor`` (bool (N,) masks).

        Parameters that hold neither are skipped. ``with_state``: multiply their optimizer
        state tensors too (when groups reach zero).
        """
        multipliers = self._multipliers_for(zero, self._no_groups if scaled is None else scaled)
        if not multipliers.rounds:
            return
        if multipliers.factor != factor:
            for flat, keep, chosen in multipliers.flats:
                flat.copy_(keep).masked_fill_(chosen, factor)
            multipliers.factor = factor
        for params, views in multipliers.rounds:
            tensors, factors = list(params), list(views)
            if with_state:
                for param, view in zip(params, views, strict=True):
                    for value in self.state.get(param, {}).values():  # type: ignore[call-overload]
                        if isinstance(value, torch.Tensor) and value.shape == param.shape:
                            tensors.append(value)
                            factors.append(view)
            torch._foreach_mul_(tensors, factors)

    def _multipliers_for(self, zero: torch.Tensor, scaled: torch.Tensor) -> _Multipliers:
        """The cached multipliers of this pattern (rebuilt only when the pattern changes)."""
        cached = self._multipliers
        if cached is not None and torch.equal(cached.zero, zero) and torch.equal(cached.scaled, scaled):
            return cached
        pad = torch.zeros(1, dtype=torch.bool)
        zero_at, scaled_at = torch.cat([zero.cpu(), pad]), torch.cat([scaled.cpu() & ~zero.cpu(), pad])
        flats, entries = [], []
        for bucket in self._buckets:
            keep, chosen = ~zero_at[bucket.gid_cpu], scaled_at[bucket.gid_cpu]
            hit = torch.zeros(len(bucket.members), dtype=torch.long).index_add_(0, bucket.member_of, (chosen | ~keep).long())
            keep_device = keep.to(device=bucket.device, dtype=bucket.dtype)
            flat = keep_device.clone()
            flats.append((flat, keep_device, chosen.to(bucket.device)))
            for i, chunk, shape, touched in zip(bucket.members, flat.split(bucket.sizes), bucket.shapes, hit.tolist(), strict=True):
                if touched:
                    entries.append((self.index.rows[i].param, chunk.view(shape)))
        rounds: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        seen: list[set[int]] = []
        for param, view in entries:
            k = next((k for k, ids in enumerate(seen) if id(param) not in ids), len(rounds))
            if k == len(rounds):
                rounds.append(([], []))
                seen.append(set())
            rounds[k][0].append(param)
            rounds[k][1].append(view)
            seen[k].add(id(param))
        self._multipliers = _Multipliers(zero.cpu().clone(), scaled.cpu().clone(), 1.0, flats, rounds)
        return self._multipliers

    # -- results ----------------------------------------------------------------------------
    def zero_mask(self) -> torch.Tensor:
        """Boolean (N,) vector of the groups held at exactly zero now."""
        raise NotImplementedError

    def redundant(self) -> Redundant:
        """The zero groups, in the form ``space.construct(redundant)`` takes."""
        return self.index.redundant(self.zero_mask())
