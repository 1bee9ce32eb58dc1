"""Fuzzing construction with thousands of random networks: how often exact, refused, or wrong.

Each case is a network drawn by ``zoo.random_nets.networks`` (convolutions of every kind, norms,
activations, residual add/sub/mul, parallel branches, split/slice/narrow at literal offsets,
reshape/permute, attention heads with SDPA and ``nn.MultiheadAttention``, pooling along any
dimension, weight sharing, embeddings, in-place ops), analysed in pruning or erasing mode, zeroed
at random (half of the groups or segments), constructed, and judged by ``zoo.fuzz.check`` on
fresh inputs and on batches of other sizes. Targets: 0 corrupt, 0 raw exceptions, 0 touched
models; construct errors (``refused`` at construction) are reported as a share of the cases that
had something to remove.

    python benchmarks/fuzz.py                      # 4000 pruning + 1000 erasing cases (about 15 min)
    python benchmarks/fuzz.py --prune 300 --erase 60 --out /tmp/fuzz   # a quick look

Hypothesis draws the networks (seeded, so a run is reproducible), without shrinking: a failure is
recorded with its spec (``zoo.random_nets.build(spec)`` rebuilds it) instead of being minimised.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `zoo` importable
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

from benchmarks.common import RESULTS_DIR, environment, markdown_table, write_results  # noqa: E402
from zoo.fuzz import FAILURES, Outcome, check  # noqa: E402
from zoo.random_nets import NetSpec, networks  # noqa: E402

KINDS = ("exact", "refused", "nothing", *FAILURES)


def fuzz(mode: str, cases: int, seed: int) -> dict[str, Any]:
    """Run ``cases`` random networks in ``mode``; the tally, refusals by stage and every failure."""
    tally: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    refusals: list[dict[str, str]] = []
    distinct: set[str] = set()
    began = time.perf_counter()

    @hypothesis_seed(seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(networks(erase_bias=mode == "erase"))
    def one(spec: NetSpec) -> None:
        outcome: Outcome = check(spec, mode)
        distinct.add(repr(spec))
        tally[outcome.kind] += 1
        if outcome.kind == "refused":
            stages[outcome.stage] += 1
            reason = _reason(outcome.detail)
            reasons[reason] += 1
            if reasons[reason] <= 3:  # a few whole messages and specs per kind, to look into
                refusals.append({"stage": outcome.stage, "detail": outcome.detail, "spec": repr(spec)})
        if outcome.failed:
            failures.append({"kind": outcome.kind, "stage": outcome.stage, "detail": outcome.detail, "spec": repr(spec)})

    one()
    total = sum(tally.values())
    removable = total - tally["nothing"]
    return {
        "mode": mode, "cases": total, "distinct": len(distinct), "seconds": time.perf_counter() - began,
        "tally": {kind: tally[kind] for kind in KINDS},
        "construct_error_share": stages["construct"] / removable if removable else 0.0,
        "refused_by_stage": dict(stages), "top_refusals": reasons.most_common(8), "refusal_examples": refusals,
        "failures": failures,
    }


def _reason(detail: str) -> str:
    """A refusal's message with its numbers blanked, so that refusals of one kind count together."""
    return re.sub(r"\d[\d.e+-]*", "#", detail.split(";")[0])[:110]


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    rows = []
    for r in payload["results"]:
        t = r["tally"]
        rows.append([r["mode"], str(r["cases"]), str(r["distinct"]), str(t["exact"]), str(t["refused"]), str(t["nothing"]),
                     f"{100 * r['construct_error_share']:.2f}%", str(t["corrupt"]), str(t["raw"]), str(t["touched"]),
                     f"{r['seconds'] / max(1, r['cases']) * 1000:.0f} ms"])
    lines = ["# Fuzzing construction with random networks", "",
             f"{env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, {env['date']}, commit {env['git_commit']}. "
             f"Hypothesis seed {payload['seed']}. `python benchmarks/fuzz.py` (zoo.random_nets + zoo.fuzz).", "",
             markdown_table(["mode", "cases", "distinct", "exact", "refused", "nothing to remove",
                             "construct errors (of cases with something to remove)", "corrupt", "raw exceptions",
                             "model touched", "per case"], rows), "",
             "Targets: 0 corrupt, 0 raw exceptions, 0 touched. *refused* counts trainonce's own errors (capture, analysis "
             "or a construction that verification rejected); *construct errors* are the refusals at construction."]
    for r in payload["results"]:
        if r["top_refusals"]:
            lines += ["", f"Most common refusals ({r['mode']}):", ""]
            lines += [f"- {count} x {reason}" for reason, count in r["top_refusals"]]
        for failure in r["failures"][:5]:
            lines += ["", f"FAILURE ({r['mode']}, {failure['kind']} at {failure['stage']}): {failure['detail'][:300]}",
                      f"    {failure['spec'][:600]}"]
    return "\n".join(lines)


def checks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Target checks for ``trainonce bench --summary``."""
    rows = []
    for r in payload["results"]:
        wrong = sum(r["tally"][kind] for kind in FAILURES)
        rows.append({"case": f"{r['mode']} ({r['cases']} random networks)", "measure": "corrupt + raw + touched",
                     "value": str(wrong), "target": "0", "met": wrong == 0})
        rows.append({"case": f"{r['mode']} ({r['cases']} random networks)", "measure": "construct errors",
                     "value": f"{100 * r['construct_error_share']:.2f}%", "target": "reported", "met": True})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prune", type=int, default=4000, help="pruning-mode cases (default 4000)")
    parser.add_argument("--erase", type=int, default=1000, help="erasing-mode cases (default 1000)")
    parser.add_argument("--seed", type=int, default=2026, help="hypothesis seed (default 2026)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # torch.export's deprecation notices, once per traced network
    results = [fuzz(mode, cases, args.seed) for mode, cases in (("prune", args.prune), ("erase", args.erase)) if cases]
    payload = {"environment": environment(), "seed": args.seed, "results": results}
    payload["checks"] = checks(payload)
    write_results(args.out, "fuzz", payload, markdown(payload))


if __name__ == "__main__":
    main()
