"""``trainonce bench``: what each stage costs on your own models, as one markdown table.

Models are named like ``trainonce analyze`` takes them (``MODULE:FACTORY``, several allowed);
each is analysed, its HESSO step timed against plain SGD, and random zeroings at the given
sparsities constructed and timed against the full model (see ``trainonce.metrics.stages``).

``--summary DIR`` instead gathers the results of the long studies in ``benchmarks/`` (run by
hand; each writes ``DIR/NAME.json`` with a ``checks`` list of target checks) into one table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from trainonce.errors import TrainonceError
from trainonce.metrics.stages import bench_model, markdown


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODULE:FACTORY",
                        help="factories returning a model or (model, example_inputs), e.g. zoo.resnet:resnet18_cifar")
    parser.add_argument("--summary", nargs="?", const="benchmarks/results", metavar="DIR",
                        help="instead: one table of every target check in DIR/*.json (default benchmarks/results), "
                        "written to DIR/summary.md")
    parser.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                        help="shape of a random example input for factories that return only a model, e.g. 1,3,224,224")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7], metavar="FRACTION",
                        help="fractions of groups zeroed at random before construction (default 0.5 0.7)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for latency (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes per model (default 20)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the table there (and FILE.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_bench(args: argparse.Namespace) -> int:
    from trainonce.cli.main import build_model  # the same model loading as `analyze`

    if args.summary is not None:
        return _summarize(Path(args.summary), Path(args.out) if args.out else None)
    if not args.models:
        raise TrainonceError("name models to measure (MODULE:FACTORY ...) or pass --summary [DIR]")
    if any(not 0.0 < s < 1.0 for s in args.sparsity):
        raise TrainonceError(f"--sparsity values are fractions in (0, 1), got {args.sparsity}")
    if args.repeats < 1:
        raise TrainonceError(f"--repeats must be at least 1, got {args.repeats}")
    results = []
    for spec in args.models:
        model, inputs = build_model(spec, args.input_shape)
        results.append(bench_model(spec, model, inputs, args.sparsity, args.threads, args.repeats, args.quiet))
    table = markdown(results)
    print(table, end="")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table)
        path.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
        print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def summary_table(directory: Path) -> str:
    """Markdown: one row per target check found in ``directory/*.json`` (``checks`` lists)."""
    rows, machines = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TrainonceError(f"cannot read {path}: {error}") from None
        checks = payload.get("checks") if isinstance(payload, dict) else None
        if not checks:
            continue
        env = payload.get("environment", {})
        threads = payload.get("config", {}).get("threads", env.get("torch_threads", "?"))
        machines.append(f"{path.stem}: {env.get('cpu', '?')}, {threads} torch thread(s), "
                        f"torch {env.get('torch', '?')}, {env.get('date', '?')}, commit {env.get('git_commit', '?')}")
        for check in checks:
            met = {True: "yes", False: "**no**", None: "—"}[check.get("met")]
            rows.append(f"| {path.stem} | {check['case']} | {check['measure']} | {check['value']} "
                        f"| {check.get('target', '')} | {met} |")
    if not rows:
        raise TrainonceError(f"no benchmark results with a summary in {directory}/ (run the scripts in benchmarks/)")
    lines = ["# trainonce benchmark summary", "", "| benchmark | case | measure | value | target | met |",
             "|---|---|---|---|---|---|", *rows, "", "Machines:", *(f"- {m}" for m in machines)]
    return "\n".join(lines) + "\n"


def _summarize(directory: Path, out: Path | None) -> int:
    if not directory.is_dir():
        raise TrainonceError(f"--summary: {directory} is not a directory")
    table = summary_table(directory)
    print(table, end="")
    target = out or directory / "summary.md"
    target.write_text(table)
    print(f"wrote {target}")
    return 0
