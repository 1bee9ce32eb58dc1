"""Constructibility probe: does the model still run when channels are removed?

Slicing tensors and fixing width attributes is not always enough: a ``forward`` may reshape
to a width computed from an attribute trainonce does not know (``x.reshape(B, N, C)`` with the
residual width ``C`` after the attention heads). Before any training, every prunable node group
is tried on a ``meta``-device skeleton (no memory, no compute): one channel removed, forward
run, output shapes compared. Groups whose removal breaks the forward are frozen, with the error
as the reason, so that training never targets structure that construction cannot remove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from trainonce.construct.build import build_compact
from trainonce.construct.plan import Kept
from trainonce.graph.capture import tracing_mode
from trainonce.graph.inputs import output_tensors
from trainonce.metrics.params import count_parameters

REAL_PROBE_MAX_PARAMETERS = 300_000_000

if TYPE_CHECKING:
    from trainonce.groups.search_space import SearchSpace
    from trainonce.groups.space import NodeGroup


def probe_constructibility(space: SearchSpace) -> str | None:
    """Freeze node groups whose removal breaks the forward; None or why the probe was skipped."""
    candidates = [g for g in space.node_groups if g.prunable]
    if not candidates:
        return None
    device: str | None = "meta"
    inputs = space.inputs.map(lambda t: t.to("meta"))
    expected = [tuple(v.shape) for v in space.graph.outputs]
    baseline = _run(space, {}, inputs, device)
    if baseline is not None:
        # Some models (e.g. HF attention masks) read tensor values; probe with real tensors
        # when the model is small enough to copy.
        on_meta = any(t.is_meta for t in space.model.parameters())
        size = count_parameters(space.model)
        if on_meta or size > REAL_PROBE_MAX_PARAMETERS:
            return f"constructibility probe skipped: the model does not run on the meta device ({baseline})"
        device, inputs = None, space.inputs
    if _run(space, _one_channel_each(candidates), inputs, device, expected) is None:
        return None
    for group in candidates:
        error = _run(space, _one_channel_each([group]), inputs, device, expected)
        if error is not None:
            group.prunable = False
            group.reason = f"removing channels breaks the forward pass: {error}"
    return None


def _one_channel_each(groups: list[NodeGroup]) -> Kept:
    kept: Kept = {}
    for group in groups:
        mask = torch.ones(group.size, dtype=torch.bool)
        mask[-1] = False
        kept[group.atom.id] = mask
    return kept


def _run(space: SearchSpace, kept: Kept, inputs: object, device: str | None,
         expected: list[tuple[int, ...]] | None = None) -> str | None:
    try:
        skeleton = build_compact(space, kept, device=device)
        with torch.no_grad(), tracing_mode(skeleton):
            outputs = output_tensors(inputs.call(skeleton))  # type: ignore[attr-defined]
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"{type(error).__name__}: {first[:200]}"
    if expected is not None:
        shapes = [tuple(t.shape) for t in outputs]
        if shapes[: len(expected)] != expected:
            return f"output shapes changed from {expected} to {shapes}"
    return None
