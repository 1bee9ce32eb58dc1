"""Random networks (hypothesis): every one is exact or refused, never corrupt, never a raw crash.

``zoo.random_nets.networks`` draws networks over a broad op vocabulary, ``zoo.fuzz.check`` prunes
(or erases) a random half of each and judges the compact model on inputs construction never saw.
The draws are derandomized, so CI runs the same cases every time; a failure prints the network's
spec, which ``zoo.random_nets.build`` turns back into the model. ``benchmarks/fuzz.py`` runs
thousands more with fresh draws.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, given, settings

from zoo.fuzz import check
from zoo.random_nets import NetSpec, networks

PRUNE_CASES = 250
ERASE_CASES = 100
SETTINGS = {"deadline": None, "database": None, "derandomize": True, "print_blob": True,
            "phases": (Phase.explicit, Phase.generate, Phase.shrink), "suppress_health_check": list(HealthCheck)}


def run_cases(mode: str, cases: int) -> Counter[str]:
    seen: Counter[str] = Counter()

    @settings(max_examples=cases, **SETTINGS)  # type: ignore[arg-type]
    @given(networks(erase_bias=mode == "erase"))
    def one(spec: NetSpec) -> None:
        outcome = check(spec, mode)
        assert not outcome.failed, f"{outcome.kind} at {outcome.stage}: {outcome.detail}\n{spec!r}"
        seen[outcome.kind] += 1

    one()
    return seen


def test_random_networks_prune_exactly_or_refuse() -> None:
    seen = run_cases("prune", PRUNE_CASES)
    assert sum(seen.values()) >= PRUNE_CASES
    assert seen["exact"] >= PRUNE_CASES // 4, seen  # the cases are not vacuous: many really prune


def test_random_networks_erase_exactly_or_refuse() -> None:
    seen = run_cases("erase", ERASE_CASES)
    assert sum(seen.values()) >= ERASE_CASES
    assert seen["exact"] >= ERASE_CASES // 10, seen
