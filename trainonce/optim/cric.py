"""HESSO-CRIC: HESSO with a corrective redundant identification cycle (ALGORITHMS.md §2.2).

HESSO ranks groups by saliency measured at one step. A structure can look redundant (small
weights, small gradients) and still be indispensable: remove it and the loss collapses beyond
what training can repair. CRIC spends a bounded number of extra steps looking for such
structures before it commits to a final set. Every phase runs the base optimizer on *all*
parameters, so the run keeps training throughout.

Phases (``phase`` in ``self.state["hesso_cric"]``; each transition happens at the end of a step,
so the next forward pass already sees the new weights):

1. ``warmup`` — plain base steps until ``start_step``.
2. The anchor step (``start_step``): the grouped weights are snapshotted (the weights the
   reference loss is measured at), the reference loss is recorded and saliency sampling starts.
   Each probe compares with the unprobed loss of its own step (closure) or of the step before
   (loss mode), not with the anchor's, so the loss falling during probing biases no ratio.
3. ``probe`` — loss sensitivity of every node group of width >= 2: for each trial sparsity in
   ``trial_sparsities`` its lowest-saliency fraction is zeroed, the loss ratio is measured and
   the weights are restored. One probe per step. With ``step(closure)`` the probe is evaluated
   inside the step, by one extra closure call on the same mini-batch as the step's own loss, so
   the ratio compares like with like; probing takes ``P = 3 * Q`` steps (Q probed node groups).
   With ``step(loss=...)`` the probed weights are put in place at the end of one step, the
   caller's next loss is the probed loss, and the step after that is an unprobed reference
   step: ``2P - 1`` steps, and the ratio compares two consecutive mini-batches (noisier).
   Probes are transient: the zeroed rows are restored (bit for bit) *before* the base step, so
   prunable parameters keep training too; in loss mode the probed step's gradient was taken at
   the probed weights, a one-step perturbation. Module buffers (BatchNorm running statistics)
   are restored after a probed forward, so a probe leaves no trace in them.
4. ``cycle`` — at most ``max_cycles`` cycles of ``sampling_steps`` steps. Cycle 1's violating set
   is the global bottom-K of the mean saliency so far (``K = floor(N * target_sparsity)``, never
   emptying a node group); it decays linearly to exactly zero over the cycle while everything
   trains. At the end of the cycle the groups that rank in the bottom-K of the *cycle's mean*
   saliency and were never violating before are the new suspects. If there are more than
   ``tolerance`` of them, they become the next cycle's violating set; otherwise (or after
   ``max_cycles``) cycling stops.
   Choice: at the end of each cycle only the groups that cycle decayed are restored from the
   anchor snapshot (their optimizer state stays zero). All other weights — the survivors and
   every non-prunable parameter — keep what they learnt, so training progress is not thrown
   away; what is discarded is only the decayed groups' own trajectory, which was forced to zero.
   Choice: suspects come from the cycle's mean score, not from every single step: single-step
   scores flicker around the bottom-K boundary, so per-step collection finds "new" suspects in
   almost every cycle and the stop rule would rarely fire.
5. ``decay`` — the final ranking is the mean saliency over every step sampled since the anchor
   (including the steps in which a cycle was decaying the group: a group that resists its decay
   shows large Taylor terms, evidence of importance; its shrinking magnitude counts against it),
   scaled to a mean magnitude of 1, plus ``sensitivity_weight`` times the loss sensitivity of
   the group's node group (mean over trials of ``log(1 + max(0, relative loss increase))``), so
   groups of sensitive node groups are protected. Its bottom-K decays linearly over
   ``hybrid_steps`` steps, as in HESSO, to exactly zero.
6. ``done`` — the K groups are held at exactly zero (their optimizer state is zeroed at the
   step they reach zero, then the weights are re-zeroed after every step, as in HESSO).

At most ``pruning_steps_bound()`` steps pass from ``start_step`` to ``done``, plus one for every
step skipped (a ``GradScaler`` overflow, or ``nonfinite="skip"``) while anchoring, probing or
cycling: those phases measure every step, so a step without a base step pauses them; the final
decay and the hold run on schedule whatever is skipped. All decisions and
measurements, the snapshot included, live in ``self.state["hesso_cric"]``, so ``state_dict()``
resumes bit for bit; it holds one extra copy of the grouped weights until the final decay
starts. Each sampled step also needs the weights as they were before it (one more copy, a
scratch buffer kept from the anchor until the final decay starts): two copies in all while
CRIC samples, none once it decays.
``group_divisible`` and parameter/FLOPs budgets are not supported here; use HESSO for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.optim.saliency import check_importance, saliency
from trainonce.optim.selection import removable_blocks, take_count
from trainonce.optim.sparse import GroupSparseOptimizer

PHASES = ("warmup", "probe", "cycle", "decay", "done")
_MAX_SENSITIVITY = 1e3  # a non-finite probed loss: the node group is treated as collapsed, not as NaN


@dataclass(frozen=True)
class ProbePlan:
    """Which node group and trial sparsity each probe ``p`` zeroes (node group major)."""

    node_groups: tuple[int, ...]  # indices into GroupIndex.node_groups, only widths >= 2
    trials: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.node_groups) * len(self.trials)

    def __getitem__(self, p: int) -> tuple[int, float]:
        return self.node_groups[p // len(self.trials)], self.trials[p % len(self.trials)]


def loss_sensitivity(probed: float, reference: float) -> float:
    """``log(1 + max(0, (probed - reference) / |reference|))``: 0 when a probe does not hurt.

    The log keeps one collapsed probe from dwarfing every other signal; the relative increase
    (not a plain ratio) keeps the sign right for losses that can be negative.
    """
    increase = (probed - reference) / max(abs(reference), 1e-12)
    value = math.log1p(max(0.0, increase)) if math.isfinite(increase) else _MAX_SENSITIVITY
    return min(value, _MAX_SENSITIVITY)


def linear_factor(length: int, tau: int) -> float:
    """HESSO's decay factor: after ``tau + 1`` of ``length`` steps the norm is ``1 - (tau+1)/length``."""
    return (length - tau - 1) / (length - tau)


class HESSOCRIC(GroupSparseOptimizer):
    """HESSO with loss-sensitivity probing and corrective cycles on top of ``base``.

    ``base``: any ``torch.optim`` optimizer over the model; ``space``: from ``trainonce.analyze``.
    ``target_sparsity``: fraction of the N groups to remove. ``sampling_steps``: length S of a
    cycle; ``max_cycles``: at most M cycles; ``tolerance``: a cycle with at most this many new
    suspects ends the cycling. ``hybrid_steps``: length H of the final linear decay.
    ``trial_sparsities``: fractions of each node group zeroed by the probes.
    ``sensitivity_weight``: weight of the loss-sensitivity protection in the final ranking.

    ``step(closure)`` or ``step(loss=...)``: the loss is needed at ``start_step`` and while
    probing; a closure gives same-batch probe ratios and fewer probing steps.
    """

    STATE_KEY = "hesso_cric"

    def __init__(self, base: Optimizer, space: SearchSpace, target_sparsity: float, *, start_step: int = 0,
                 sampling_steps: int, max_cycles: int = 5, tolerance: int = 0, hybrid_steps: int,
                 importance: Mapping[str, float] | None = None, trial_sparsities: Sequence[float] = (0.25, 0.5, 0.75),
                 sensitivity_weight: float = 1.0, nonfinite: str = "raise") -> None:
        super().__init__(base, space, nonfinite=nonfinite)
        _check_arguments(target_sparsity, start_step, sampling_steps, max_cycles, tolerance, hybrid_steps,
                         trial_sparsities, sensitivity_weight)
        self.start_step = start_step
        self.target_sparsity = target_sparsity
        self.sampling_steps = sampling_steps
        self.max_cycles = max_cycles
        self.tolerance = tolerance
        self.hybrid_steps = hybrid_steps
        self.sensitivity_weight = float(sensitivity_weight)
        self.weights = check_importance(importance)
        self.num_target = self._count_target(target_sparsity)
        widths = [g.size for g in self.index.node_groups]
        self.plan = ProbePlan(tuple(j for j, w in enumerate(widths) if w >= 2), tuple(float(t) for t in trial_sparsities))
        n = self.index.num_groups
        no_groups = torch.zeros(n, dtype=torch.bool)
        self.new_state(
            phase="warmup", phase_step=0, reference_loss=None, last_loss=None, snapshot=None,
            score_sum=torch.zeros(n, dtype=torch.float64), num_scores=0,
            cycle_sum=torch.zeros(n, dtype=torch.float64), cycle_scores=0,
            probe_next=0, probe_pending=False, probe_mask=None, probe_saved=None, probe_buffers=None,
            probe_sensitivity=torch.full((len(self.plan),), float("nan"), dtype=torch.float64),
            cycle=0, suspects_per_cycle=[], violating=no_groups.clone(), historical=no_groups.clone(),
            final=no_groups.clone())

    def hyperparameters(self) -> dict[str, Any]:
        return {"target_sparsity": self.target_sparsity, "start_step": self.start_step, "sampling_steps": self.sampling_steps,
                "max_cycles": self.max_cycles, "tolerance": self.tolerance, "hybrid_steps": self.hybrid_steps,
                "trial_sparsities": list(self.plan.trials), "sensitivity_weight": self.sensitivity_weight,
                "importance": dict(self.weights)}

    def _count_target(self, target_sparsity: float) -> int:
        """K = floor(N * s); a clear error if it is 0 or would empty a node group."""
        n = self.index.num_groups
        k = int(n * target_sparsity)
        removable = n - len(self.index.node_groups)
        if k == 0:
            raise TrainonceError(f"target_sparsity={target_sparsity} of N={n} groups removes nothing; raise it")
        if k > removable:
            raise TrainonceError(f"target_sparsity={target_sparsity} asks for {k} of {n} groups, but at most {removable} "
                                 "can go while every node group keeps a channel")
        return k

    def pruning_steps_bound(self, closure: bool = True) -> int:
        """Most steps from ``start_step`` until the K groups are zero (fewer when cycling stops early)."""
        probing = len(self.plan) if closure else 2 * len(self.plan) - 1
        return 1 + probing + self.max_cycles * self.sampling_steps + self.hybrid_steps

    def after_load(self) -> None:
        super().after_load()
        state = self.own_state
        if state.get("phase") not in PHASES:
            raise TrainonceError(f"the saved HESSOCRIC state has an unknown phase {state.get('phase')!r}")
        devices = [rows.param.device for rows in self.index.rows]
        for key in ("snapshot", "probe_saved"):
            if state[key] is not None:
                state[key] = [t.to(device) for t, device in zip(state[key], devices, strict=True)]
        if state["probe_buffers"] is not None:
            state["probe_buffers"] = [t.to(b.device) for t, b in zip(state["probe_buffers"], self._buffers(), strict=True)]

    # -- the step ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: float | torch.Tensor | None = None) -> Any:  # type: ignore[override]
        """One training step; ``loss`` (this step's loss) is an alternative to ``closure``."""
        if closure is not None and loss is not None:
            raise TrainonceError("give step(closure) or step(loss=...), not both: it is ambiguous which loss CRIC should use")
        state = self.own_state
        phase = state["phase"]
        if phase == "warmup":
            result = self._anchor(closure, loss) if state["step"] >= self.start_step else self.base_step(closure)
        elif phase == "probe":
            result = self._probe_step(closure, loss)
        elif phase == "cycle":
            result = self._cycle_step(closure)
        elif phase == "decay":
            result = self._decay_step(closure)
        else:
            result = self.base_step(closure)
            self.multiply(state["final"])  # hold; state was zeroed when they reached zero
        state["step"] += 1
        return result

    def _anchor(self, closure: Callable[[], Any] | None, loss: float | torch.Tensor | None) -> Any:
        """Snapshot the weights and the reference loss; first saliency sample."""
        state = self.own_state
        before = self.snapshot()
        result = self.base_step(closure)
        if not self.step_taken:
            return result  # no loss to anchor to: the next step that is taken anchors
        reference = self._loss_value(result if closure is not None else loss, "the anchor step (start_step)")
        state.update(snapshot=before, reference_loss=reference, last_loss=reference, phase="probe")
        self._sample(before)
        if len(self.plan) == 0:
            self._start_cycling()
        elif closure is None:
            self._arm_probe()  # loss mode: the caller's next forward pass sees the first probe
        return result

    def _probe_step(self, closure: Callable[[], Any] | None, loss: float | torch.Tensor | None) -> Any:
        state = self.own_state
        if closure is not None:
            if not state["probe_pending"]:
                self._arm_probe()
            with torch.enable_grad():
                probed = self._loss_value(closure(), "a probe's closure call")
            self._disarm_probe()
            self.base.zero_grad(set_to_none=True)  # the probe's gradients must not leak into the real step
            before = self.capture()
            result = self.base_step(closure)
            if not self.step_taken:
                return result  # the reference loss is not usable: this probe is tried again next step
            reference = self._loss_value(result, "the probing steps")
            self._record_probe(probed, reference)
            state["last_loss"] = reference
            measured = True
        else:
            value = self._loss_value(loss, "the probing steps")
            measured = bool(state["probe_pending"])
            if measured:  # this loss was computed at the probed weights
                self._disarm_probe()
                self._record_probe(value, state["last_loss"])
            else:  # an unprobed step: the reference for the next probe
                state["last_loss"] = value
            before = self.capture()
            result = self.base_step(None)
        if self.step_taken:
            self._sample(before)
        if state["probe_next"] == len(self.plan):
            self._start_cycling()
        elif closure is None and not measured:
            self._arm_probe()
        return result

    def _cycle_step(self, closure: Callable[[], Any] | None) -> Any:
        state = self.own_state
        before = self.capture()
        result = self.base_step(closure)
        if not self.step_taken:
            return result  # a cycle measures every step: a skipped one pauses it
        scores = self._sample(before)
        state["cycle_sum"] += scores
        state["cycle_scores"] += 1
        self.scale_groups(state["violating"], linear_factor(self.sampling_steps, state["phase_step"]))
        state["phase_step"] += 1
        if state["phase_step"] == self.sampling_steps:
            self._end_cycle()
        return result

    def _decay_step(self, closure: Callable[[], Any] | None) -> Any:
        state = self.own_state
        result = self.base_step(closure)
        self.scale_groups(state["final"], linear_factor(self.hybrid_steps, state["phase_step"]))
        state["phase_step"] += 1
        if state["phase_step"] == self.hybrid_steps:
            state["phase"] = "done"
        return result

    def _loss_value(self, value: float | torch.Tensor | None, when: str) -> float:
        if value is None:
            raise TrainonceError(
                f"HESSOCRIC needs the loss at {when} (step {self.own_state['step']}): call opt.step(closure) with a closure "
                "that returns the loss, or opt.step(loss=loss) after loss.backward()")
        return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)

    # -- saliency sampling ------------------------------------------------------------------
    def _sample(self, before: list[torch.Tensor]) -> torch.Tensor:
        """Saliency of every group for the step just taken from ``before``; added to the running sum."""
        state = self.own_state
        everything = torch.ones(self.index.num_groups, dtype=torch.bool)
        scores = saliency(self.statistics(before), self.weights, everything)
        state["score_sum"] += scores
        state["num_scores"] += 1
        return scores

    def mean_score(self) -> torch.Tensor:
        """Mean saliency over every step sampled since ``start_step``."""
        state = self.own_state
        return state["score_sum"] / max(1, state["num_scores"])

    def _bottom_k(self, score: torch.Tensor) -> torch.Tensor:
        """The K lowest groups globally, never a node group's last channel; the same on every rank."""
        everything = torch.ones(self.index.num_groups, dtype=torch.bool)
        blocks = removable_blocks(score, self.index.owner, everything, 1)
        return self.agree(take_count(blocks, self.num_target, self.index.num_groups))

    # -- probing ----------------------------------------------------------------------------
    def _probe_mask(self, j: int, trial: float) -> torch.Tensor:
        """The ``trial`` fraction of node group ``j`` with the lowest mean saliency (at least 1, never all)."""
        members = torch.nonzero(self.index.owner == j).squeeze(1)
        width = len(members)
        count = min(max(1, int(width * trial)), width - 1)
        lowest = members[torch.sort(self.mean_score()[members], stable=True).indices[:count]]
        mask = torch.zeros(self.index.num_groups, dtype=torch.bool)
        mask[lowest] = True
        return self.agree(mask)

    def _arm_probe(self) -> None:
        """Zero the next probe's groups, keeping their exact values (and the buffers) to restore."""
        state = self.own_state
        mask = self._probe_mask(*self.plan[state["probe_next"]])
        saved = []
        for rows in self.index.rows:  # save and zero in order; restored in reverse (rows may share a tensor)
            where = rows.positions(mask)
            saved.append(rows.param.detach().index_select(rows.dim, where).clone())
            rows.param.data.index_fill_(rows.dim, where, 0.0)
        state.update(probe_mask=mask, probe_saved=saved, probe_buffers=[b.detach().clone() for b in self._buffers()],
                     probe_pending=True)

    def _disarm_probe(self) -> None:
        """Put the probed groups and the module buffers back exactly as they were when armed."""
        state = self.own_state
        mask = state["probe_mask"]
        for rows, saved in reversed(list(zip(self.index.rows, state["probe_saved"], strict=True))):
            rows.param.data.index_copy_(rows.dim, rows.positions(mask), saved)
        for buffer, saved in zip(self._buffers(), state["probe_buffers"], strict=True):
            buffer.copy_(saved)
        state.update(probe_mask=None, probe_saved=None, probe_buffers=None, probe_pending=False)

    def _record_probe(self, probed: float, reference: float) -> None:
        state = self.own_state
        state["probe_sensitivity"][state["probe_next"]] = loss_sensitivity(probed, reference)
        state["probe_next"] += 1

    def _buffers(self) -> list[torch.Tensor]:
        return list(self.space.model.buffers())

    def sensitivity(self) -> torch.Tensor:
        """Loss sensitivity of every node group (index order of ``self.index.node_groups``); 0 if not probed."""
        per_probe = self.own_state["probe_sensitivity"].view(-1, len(self.plan.trials)) if len(self.plan) else None
        result = torch.zeros(len(self.index.node_groups), dtype=torch.float64)
        if per_probe is not None:
            measured = per_probe.isfinite()
            total = torch.where(measured, per_probe, torch.zeros_like(per_probe)).sum(1)
            result[list(self.plan.node_groups)] = total / measured.sum(1).clamp(min=1)
        return result

    # -- cycles -----------------------------------------------------------------------------
    def _start_cycling(self) -> None:
        state = self.own_state
        violating = self._bottom_k(self.mean_score())
        state.update(phase="cycle", phase_step=0, cycle=1, violating=violating, historical=violating.clone())
        self._new_cycle_scores()

    def _new_cycle_scores(self) -> None:
        self.own_state["cycle_sum"] = torch.zeros(self.index.num_groups, dtype=torch.float64)
        self.own_state["cycle_scores"] = 0

    def _end_cycle(self) -> None:
        """Collect the new suspects, restore the decayed groups, then cycle again or stop."""
        state = self.own_state
        cycle_mean = state["cycle_sum"] / max(1, state["cycle_scores"])
        suspects = self._bottom_k(cycle_mean) & ~state["historical"]
        found = int(suspects.sum())
        state["suspects_per_cycle"].append(found)
        self._restore_from_snapshot(state["violating"])
        if found <= self.tolerance or state["cycle"] >= self.max_cycles:
            self._start_decay()
            return
        state.update(phase_step=0, cycle=state["cycle"] + 1, violating=suspects, historical=state["historical"] | suspects)
        self._new_cycle_scores()

    def _restore_from_snapshot(self, mask: torch.Tensor) -> None:
        for rows, snapshot in zip(self.index.rows, self.own_state["snapshot"], strict=True):
            where = rows.positions(mask)
            rows.param.data.index_copy_(rows.dim, where, snapshot.index_select(rows.dim, where))

    # -- final selection ----------------------------------------------------------------------
    def final_ranking(self) -> torch.Tensor:
        """Mean saliency (scaled to mean magnitude 1) plus the node group's sensitivity penalty."""
        mean = self.mean_score()
        ranking = mean / mean.abs().mean().clamp(min=1e-12)
        if self.sensitivity_weight != 0:
            ranking = ranking + self.sensitivity_weight * self.sensitivity()[self.index.owner]
        return ranking

    def _start_decay(self) -> None:
        state = self.own_state
        state.update(phase="decay", phase_step=0, final=self._bottom_k(self.final_ranking()), snapshot=None,
                     violating=torch.zeros(self.index.num_groups, dtype=torch.bool))
        self._new_cycle_scores()
        self.release_scratch()  # no more saliency samples

    # -- results ----------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        """One of ``PHASES``."""
        return str(self.own_state["phase"])

    @property
    def finished(self) -> bool:
        """The K final groups are zero and held there."""
        return self.phase == "done"

    def zero_mask(self) -> torch.Tensor:
        if self.finished:
            return self.own_state["final"].clone()
        return torch.zeros(self.index.num_groups, dtype=torch.bool)


def _check_arguments(target_sparsity: float, start_step: int, sampling_steps: int, max_cycles: int, tolerance: int,
                     hybrid_steps: int, trial_sparsities: Sequence[float], sensitivity_weight: float) -> None:
    if not 0.0 < target_sparsity < 1.0:
        raise TrainonceError(f"target_sparsity must be in (0, 1), got {target_sparsity}")
    for name, value, least in (("start_step", start_step, 0), ("sampling_steps", sampling_steps, 1),
                               ("max_cycles", max_cycles, 1), ("tolerance", tolerance, 0), ("hybrid_steps", hybrid_steps, 1)):
        if not isinstance(value, int) or value < least:
            raise TrainonceError(f"{name} must be an integer >= {least}, got {value!r}")
    if len(trial_sparsities) == 0 or not all(0.0 < t < 1.0 for t in trial_sparsities):
        raise TrainonceError(f"trial_sparsities must be a non-empty sequence of fractions in (0, 1), got {tuple(trial_sparsities)}")
    if not sensitivity_weight >= 0.0:
        raise TrainonceError(f"sensitivity_weight must be >= 0, got {sensitivity_weight}")
