"""The ``trainonce`` command line.

Errors a user can fix (a bad argument, a model that cannot be imported or traced) print one
line and exit with status 2; tracebacks are reserved for bugs in trainonce itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import torch

from trainonce.cli.bench import add_bench_arguments, run_bench
from trainonce.cli.demo import add_demo_arguments, run_demo
from trainonce.cli.factory import build_model as build_from_factory
from trainonce.cli.prune import add_prune_arguments, run_prune
from trainonce.errors import TrainonceError


class UsageError(TrainonceError):
    """A command-line argument is wrong."""


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part)
    except ValueError:
        raise UsageError(f"--input-shape must be comma separated integers like 1,3,32,32, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise UsageError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def build_model(spec: str, input_shapes: Sequence[str]) -> tuple[torch.nn.Module, Any]:
    """Call the factory; random inputs of ``input_shapes`` replace (or supply) its example inputs."""
    model, inputs = build_from_factory(spec)
    if input_shapes:
        tensors = tuple(torch.randn(parse_shape(s)) for s in input_shapes)
        inputs = tensors[0] if len(tensors) == 1 else tensors
    if inputs is None:
        raise UsageError(f"{spec} returned only a model: pass --input-shape (e.g. --input-shape 1,3,224,224)")
    return model, inputs


def cmd_analyze(args: argparse.Namespace) -> int:
    import trainonce
    from trainonce.metrics import compare

    model, inputs = build_model(args.model, args.input_shape)
    space = trainonce.analyze(model, inputs, mode=args.mode, exclude=tuple(args.exclude))
    print(space.summary(max_rows=args.rows))
    if args.render:
        print(f"wrote {space.render(args.render)}")
    if args.zero:
        redundant = space.zero_random(args.zero, seed=args.seed)
        removed = sum(len(v) for v in redundant.values())
        print(f"\nzeroed {removed:,} of {space.num_prunable:,} groups at random (fraction {args.zero}), constructing...")
        compact = space.construct()
        print(compare(model, compact, inputs).table())
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


EXAMPLES = """examples:
  trainonce demo                                         train + compress a small CNN on embedded data
  trainonce analyze zoo.resnet:resnet18_cifar --render graph.html
  trainonce analyze my_project.models:build --input-shape 1,3,224,224 --zero 0.5
  trainonce prune --example > run.yaml && trainonce prune run.yaml
  trainonce bench zoo.resnet:resnet18_cifar --out bench.md
"""


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="trainonce",
        description="Train and compress any PyTorch network in one run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze",
        help="trace a model and print its pruning search space",
        description="Trace a model with torch.export, print its node groups (prunable or why not) and, "
        "with --zero, zero a random fraction of the groups, construct the compact model, verify it "
        "and print parameters, MACs and latency before/after.",
    )
    analyze.add_argument("model", help="MODULE:FACTORY returning a model or (model, example_inputs), e.g. zoo.resnet:resnet18_cifar")
    analyze.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                         help="shape of a random example input, e.g. 1,3,32,32 (repeat for several inputs)")
    analyze.add_argument("--mode", choices=("prune", "erase"), default="prune",
                         help="prune channels/heads (default) or erase whole operators (segments feeding add/concat joints)")
    analyze.add_argument("--exclude", action="append", default=[], metavar="MODULE", help="module name whose channels must not be pruned")
    analyze.add_argument("--zero", type=float, default=0.0, metavar="FRACTION", help="zero this fraction of groups at random, then construct and compare")
    analyze.add_argument("--seed", type=int, default=0)
    analyze.add_argument("--rows", type=int, default=40, help="rows of the node-group table")
    analyze.add_argument("--render", metavar="PATH", help="draw the dependency graph: .svg/.pdf/.png (graphviz), "
                         ".html (self-contained explorer with search) or .dot")
    analyze.set_defaults(run=cmd_analyze)
    demo = commands.add_parser(
        "demo",
        help="train a small CNN with HESSO on embedded data, compress it, print before/after",
        description="Train a small residual CNN with HESSO on scikit-learn's digits (or a local "
        "Fashion-MNIST), construct the compact model, print accuracy, parameters, MACs and latency "
        "before/after, and write training plots, the history and the compact model to --out.",
    )
    add_demo_arguments(demo)
    demo.set_defaults(run=run_demo)
    prune = commands.add_parser(
        "prune",
        help="train and compress a model described by a YAML/TOML config (resumable)",
        description="Build the model and data named in CONFIG, train with a pruning optimizer (HESSO by "
        "default), construct and verify the compact model, and write it (trainonce.save format), a report "
        "and a checkpoint to the config's output directory. Running the same command again resumes from "
        "the checkpoint. 'trainonce prune --example' prints a commented config to start from.",
    )
    add_prune_arguments(prune)
    prune.set_defaults(run=run_prune)
    bench = commands.add_parser(
        "bench",
        help="time analysis, optimizer steps, construction and compact-model speed on your models",
        description="For each model: analysis time, HESSO step time / SGD step time, and for random zeroings "
        "at each --sparsity: construction time (and / one deepcopy), params, MACs and latency ratios, and "
        "the fraction of the ideal speed-up (MAC ratio) the compact model reaches. Prints a markdown table.",
    )
    add_bench_arguments(bench)
    bench.set_defaults(run=run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except TrainonceError as error:
        print(f"trainonce: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
