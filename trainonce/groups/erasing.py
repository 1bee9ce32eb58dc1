"""``ErasingSpace``: the erasing-mode search space (whole operators instead of channels).

The erasable segments (GeZIGs) of the ``ErasingGraph`` are exposed to the optimizers as one
node group whose "channels" are the segments: group ``g`` is every parameter of candidate
segment ``g`` (all of it, along dimension 0). So HESSO, DHSPG and H2SPG index, score, decay and
zero segments with the same vectorised machinery as channels; what differs is *which* sets may
be removed together (``ErasingGraph.select``) and how the compact model is built
(``trainonce.construct.erase``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trainonce.errors import ConstructionError, TrainonceError
from trainonce.graph.inputs import ExampleInputs, output_tensors
from trainonce.graph.ir import Graph, Value
from trainonce.groups.atoms import Layout, term_size
from trainonce.groups.propagate import Propagation
from trainonce.groups.search_space import Redundant, SearchSpace
from trainonce.groups.segments import ErasingGraph, SegmentKind
from trainonce.groups.space import NodeGroup, ParamSlice


class ErasingSpace(SearchSpace):
    """Erasable segments of a model, with validity-preserving selection and construction."""

    mode = "erase"
    erasing: ErasingGraph

    def __init__(self, model: nn.Module, inputs: ExampleInputs, graph: Graph, propagation: Propagation,
                 layouts: dict[int, list[Layout]], program: torch.export.ExportedProgram, dynamic_batch: bool,
                 erasing: ErasingGraph) -> None:
        super().__init__(model, inputs, graph, propagation, [], layouts)
        self.program = program  # functional; the graph analysed and the graph erased are this one
        self.dynamic_batch = dynamic_batch
        self.erasing = erasing
        self._build_group()

    def _build_group(self) -> None:
        candidates = self.erasing.candidates
        self.node_groups = []
        if not candidates:
            return
        atom = self.propagation.atoms.new(len(candidates), "erasable segments")
        group = NodeGroup(0, atom, len(candidates), True, None)
        for g, segment_id in enumerate(candidates):
            segment = self.erasing.segments[segment_id]
            for param in segment.parameters:
                group.producers.append(ParamSlice(param, 0, torch.full((param.shape[0],), g, dtype=torch.long)))
            group.producers.extend(self._slice_followers(g, {a.id for a in segment.cat_atoms}, segment.parameters))
        self.node_groups = [group]

    def _slice_followers(self, g: int, atoms: set[int], own: list[Value]) -> list[ParamSlice]:
        """Per-channel parameters after a concat (a BatchNorm over it) on the slice a segment feeds.

        They belong to the GeZIG: only when they are zero too is the dropped slice exactly zero
        where the next op sums over it. Contracting parameters (the next conv's input columns)
        are the consumer side and are not zeroed.
        """
        if not atoms:
            return []
        consumed: dict[int, set[int]] = {}
        for value, layout in self.propagation.consumed:
            consumed.setdefault(value.id, set()).update(a.id for a in self.propagation.atoms.leaves(layout))
        slices = []
        for param in self.graph.parameters:
            if param in own:
                continue
            for d, layout in enumerate(self.layouts[param.id]):
                mine = atoms - consumed.get(param.id, set())
                index = _coordinates_in(layout, mine, g)
                if index is not None:
                    slices.append(ParamSlice(param, d, index))
        return slices

    # -- the probe --------------------------------------------------------------------------
    def probe(self) -> None:
        """Erase each concat-feeding candidate alone on a skeleton; what breaks the forward is not erasable.

        Zero-invariance is proven op by op, and erasing an add operand is a same-shape
        pass-through, so only dropped concat slices can still break something (a shape computed
        from the width downstream). Those are tried on a ``meta`` skeleton (or on the model's own
        weights when it reads tensor values), so training never targets what cannot be built.
        """
        slicing = [g for g, s in enumerate(self.erasing.candidates) if self.erasing.segments[s].cat_atoms]
        if not slicing:
            return
        from trainonce.construct.erase import erased_module
        from trainonce.construct.probe import REAL_PROBE_MAX_PARAMETERS
        from trainonce.metrics.params import count_parameters

        expected = [tuple(v.shape) for v in self.graph.outputs]

        def attempt(candidates: list[int], device: str, inputs: ExampleInputs) -> str | None:
            try:
                skeleton = erased_module(self, candidates, device=device)
                with torch.no_grad():
                    shapes = [tuple(t.shape) for t in output_tensors(inputs.call(skeleton))]
            except Exception as error:  # the probe reports any failure as a reason, by design
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                return f"erasing it breaks the forward pass: {type(error).__name__}: {first[:160]}"
            return None if shapes[: len(expected)] == expected else f"erasing it changes the output shapes to {shapes}"

        device, inputs = "meta", self.inputs.map(lambda t: t.to("meta"))
        if attempt([], device, inputs) is not None:  # the model reads tensor values: probe on its real weights
            if any(t.is_meta for t in self.model.parameters()) or count_parameters(self.model) > REAL_PROBE_MAX_PARAMETERS:
                self.notes.append("erase probe skipped: the model does not run on the meta device")
                return
            device, inputs = "share", self.inputs
        broken: dict[int, str] = {}
        for g in slicing:
            why = attempt([g], device, inputs)
            if why is not None:
                broken[self.erasing.candidates[g]] = why
        for segment_id, why in broken.items():
            segment = self.erasing.segments[segment_id]
            segment.erasable, segment.reason = False, why
        if broken:
            self.erasing.candidates = [c for c in self.erasing.candidates if c not in broken]
            self._build_group()

    # -- zeroing ----------------------------------------------------------------------------
    def zero_candidates(self, candidates: list[int]) -> None:
        if candidates:
            self.zero_groups({0: torch.tensor(sorted(candidates))})

    def zero_random(self, fraction: float, seed: int = 0, divisible: int = 1) -> Redundant:
        """Zero a random valid set of about ``fraction`` of the erasable segments.

        The candidates are visited in random order and accepted while the network stays valid,
        as hierarchical selection does, so the result is always constructible. ``divisible`` is
        accepted for the prune-mode signature only: erasing removes whole operators, no width
        is left to round, so anything but 1 is an error.
        """
        if not 0.0 <= fraction < 1.0:
            raise TrainonceError(f"fraction must be in [0, 1), got {fraction}")
        if divisible != 1:
            raise TrainonceError(f"erase mode removes whole segments: divisible must be 1, got {divisible}")
        count = len(self.erasing.candidates)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
        accepted = self.erasing.select(order, limit=int(count * fraction))
        self.zero_candidates(accepted)
        return {0: torch.tensor(sorted(accepted), dtype=torch.long)} if accepted else {}

    # -- construction -----------------------------------------------------------------------
    def construct(self, redundant: Redundant | None = None, verify: bool = True) -> nn.Module:
        """A new ``GraphModule`` without the erased segments; the model is left untouched.

        ``redundant`` (e.g. ``optimizer.redundant()``) must agree with the segments whose
        parameters are exactly zero; by default those are used.
        """
        from trainonce.construct.construct import REPORT, failure_message, resolve_redundant
        from trainonce.construct.erase import erased_module
        from trainonce.construct.verify import verify as verify_models

        redundant = resolve_redundant(self, redundant)
        candidates = sorted(int(g) for g in redundant.get(0, torch.zeros(0, dtype=torch.long)).tolist())
        removed = {self.erasing.candidates[g] for g in candidates}
        listed = [self.erasing.segments[s].name for s in sorted(removed)]
        names = ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
        if not self.erasing.valid(removed):
            raise ConstructionError(
                f"erasing these segments would disconnect the network (a joint would lose every operand, or an "
                f"input would no longer reach an output): {names}. Select them with H2SPG/HESSO in erase mode, "
                "which only accepts sets that keep the network connected")
        try:
            compact = erased_module(self, candidates)
        except Exception as error:
            raise ConstructionError(f"erasing {names} failed ({type(error).__name__}: {error}). {REPORT}") from error
        if verify:
            verdict = verify_models(self.model, compact, self.inputs)
            if not verdict.exact:
                raise ConstructionError(failure_message(verdict, lambda: f"erased segments: {names or 'none'}"))
        return compact

    # -- reporting --------------------------------------------------------------------------
    def summary(self, max_rows: int = 60) -> str:
        from trainonce.groups.erasing_summary import summarize_erasing

        return summarize_erasing(self, max_rows)

    def render(self, path: str | Path, erased: list[int] | None = None) -> str:
        """The erasing dependency graph (.svg/.pdf/.png via graphviz, .dot, or a self-contained .html
        explorer); ``erased`` candidates, by default the zero ones, are drawn removed together
        with what dies with them."""
        from trainonce.viz.segments import render_segments

        if erased is None:
            erased = self.redundant_from_zeros().get(0, torch.zeros(0, dtype=torch.long)).tolist()
        return render_segments(self, path, erased)

    def __repr__(self) -> str:
        chains = sum(s.kind is SegmentKind.CHAIN for s in self.erasing.segments)
        return (f"ErasingSpace({self.graph.model_name}: {len(self.erasing.segments)} segments, {chains} op chains, "
                f"{len(self.erasing.candidates)} erasable)")


def _coordinates_in(layout: Layout, atoms: set[int], g: int) -> torch.Tensor | None:
    """``g`` at the positions of a dimension that lie on one of ``atoms``, -1 elsewhere."""
    pieces, hit = [], False
    for term in layout:
        size = term_size(term)
        inside = any(a.id in atoms for a in term)
        hit |= inside
        pieces.append(torch.full((size,), g if inside else -1, dtype=torch.long))
    return torch.cat(pieces) if hit else None
