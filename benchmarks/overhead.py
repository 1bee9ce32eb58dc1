"""Cost of HESSO's ``step()`` relative to the base optimizer's ``step()`` it wraps.

Two copies of the same model are built: one stepped by the plain base optimizer, one by
``trainonce.HESSO`` around an identically configured base optimizer. Gradients are filled once
with fixed random tensors (no forward/backward: only the optimizer step is timed; the one forward
pass is the trace ``trainonce.analyze`` makes). Then HESSO is walked through its whole timeline
and every HESSO step is timed next to one base step, in alternating order, so that a busy spell
on a shared machine hits both sides alike. Steps are classified by where they fall in HESSO's
schedule:

* ``before``     steps before ``start_step`` (HESSO only counts them);
* ``selection``  the first step of each period: saliency of every group, choice of the quota;
* ``decay``      the other steps of a period: the chosen groups are scaled down, earlier ones held;
* ``hold``       after the last period: the K removed groups are held at exactly zero.

Reported per phase: the median step time of each side and their ratio (HESSO / base), after a
few untimed steps of both base optimizers (state allocation, allocator warm-up). The ``before``
ratio doubles as the noise floor: there HESSO adds only its step counter. Target: <= 1.10 on the
non-selection phases. Models: a ResNet-50 with the ImageNet stem (25.6 M parameters) and
BERT-base (109 M, random init); bases: SGD with momentum and AdamW (torch's default
implementation for CPU tensors), with the HESSO defaults (10 periods, here of 10 steps each).

    python benchmarks/overhead.py            # ResNet-50 and BERT-base x SGD / AdamW (~6 min, 1 thread)
    python benchmarks/overhead.py --quick    # tiny models, a few steps per phase (smoke run)
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `zoo` importable
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import trainonce  # noqa: E402
from benchmarks.common import RESULTS_DIR, display_path, environment, markdown_table, write_results  # noqa: E402

PHASES = ("before", "decay", "hold", "selection")
NON_SELECTION = ("before", "decay", "hold")
TARGET_RATIO = 1.10

# -----------------------------------------------------------------------------
# Models and base optimizers


def resnet50() -> tuple[nn.Module, Any]:
    """torchvision-shaped ResNet-50 (ImageNet stem, 1000 classes); traced at 64x64 to keep analysis quick
    (the search space does not depend on the resolution, the step cost not at all)."""
    from zoo.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=1000, imagenet_stem=True), torch.randn(1, 3, 64, 64)


def bert_base() -> tuple[nn.Module, Any]:
    from transformers import BertModel

    from zoo.hf import bert_base_config

    ids = torch.randint(0, 1000, (1, 16))
    return BertModel(bert_base_config()), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def resnet_tiny() -> tuple[nn.Module, Any]:
    from zoo.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, (1, 1, 1, 1), (8, 16, 32, 64), num_classes=10), torch.randn(1, 3, 32, 32)


def bert_tiny() -> tuple[nn.Module, Any]:
    from transformers import BertModel

    from zoo.hf import bert_base_config

    config = bert_base_config(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    ids = torch.randint(0, 100, (1, 8))
    return BertModel(config), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


MODELS: dict[str, Callable[[], tuple[nn.Module, Any]]] = {
    "resnet50": resnet50, "bert_base": bert_base, "resnet_tiny": resnet_tiny, "bert_tiny": bert_tiny}
BASES: dict[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01),
}
BASE_DESCRIPTIONS = {"sgd_momentum": "SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)", "adamw": "AdamW(lr=1e-4, weight_decay=0.01)"}


# -----------------------------------------------------------------------------
# Timing


def fill_gradients(model: nn.Module, seed: int) -> None:
    """Fixed random gradients, the same for both copies (the step never sees a backward pass)."""
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator) * 1e-3


def phase_of(step: int, start: int, length: int, periods: int) -> str:
    """Where step ``step`` (0-based) falls in HESSO's schedule."""
    if step < start:
        return "before"
    if step >= start + length * periods:
        return "hold"
    return "selection" if (step - start) % length == 0 else "decay"


def timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return (time.perf_counter() - started) * 1e3


def measure(model_name: str, base_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Walk HESSO through before / periods / hold, timing each of its steps next to a base step."""
    torch.manual_seed(0)
    model, example = MODELS[model_name]()
    twin = copy.deepcopy(model)
    analyze_started = time.perf_counter()
    space = trainonce.analyze(model, example)
    analyze_seconds = time.perf_counter() - analyze_started
    fill_gradients(model, seed=1)
    fill_gradients(twin, seed=1)
    start, length, periods = args.before, args.period_length, args.periods
    hesso = trainonce.HESSO(BASES[base_name](model.parameters()), space, target_sparsity=args.sparsity,
                            start_step=start, pruning_steps=length * periods, periods=periods)
    base = BASES[base_name](twin.parameters())
    total = start + length * periods + args.hold

    for _ in range(args.warmup):  # untimed: allocate optimizer state, warm the allocator and caches
        hesso.base.step()  # the wrapped base directly, so HESSO's own step counter does not move
        base.step()
    samples: dict[str, list[tuple[float, float]]] = {phase: [] for phase in PHASES}
    gc.collect()
    gc.disable()  # a collection inside one side's timing would be charged to it alone
    try:
        for step in range(total):
            if step % 2 == 0:
                t_base, t_hesso = timed(base.step), timed(hesso.step)
            else:
                t_hesso, t_base = timed(hesso.step), timed(base.step)
            phase = phase_of(step, start, length, periods)
            samples[phase].append((t_base, t_hesso))
            if args.verbose:
                print(f"  {model_name} {base_name} step {step:4d} {phase:9s} base {t_base:8.2f} ms  hesso {t_hesso:8.2f} ms", flush=True)
    finally:
        gc.enable()

    progress = hesso.metrics()
    phases = {}
    for phase, pairs in samples.items():
        base_ms, hesso_ms = [b for b, _ in pairs], [h for _, h in pairs]
        phases[phase] = {
            "steps": len(pairs),
            "base_ms": statistics.median(base_ms),
            "hesso_ms": statistics.median(hesso_ms),
            "ratio": statistics.median(hesso_ms) / statistics.median(base_ms),
            "paired_ratio_median": statistics.median(h / b for b, h in pairs),
        }
    result = {
        "model": model_name, "base": base_name, "base_optimizer": BASE_DESCRIPTIONS[base_name],
        "parameters": trainonce.metrics.count_parameters(model), "num_groups": space.num_prunable,
        "analyze_seconds": round(analyze_seconds, 2),
        "schedule": {"start_step": start, "pruning_steps": length * periods, "periods": periods, "hold_steps": args.hold},
        "final_group_sparsity": progress.group_sparsity, "final_zero_groups": progress.num_zero_groups,
        "phases": phases,
        "max_non_selection_ratio": max(phases[p]["ratio"] for p in NON_SELECTION),
    }
    result["target_met"] = result["max_non_selection_ratio"] <= TARGET_RATIO
    ratios = "  ".join(f"{p} {phases[p]['ratio']:.3f}" for p in PHASES)
    print(f"{model_name:10s} {base_name:12s} base {phases['decay']['base_ms']:8.2f} ms  ratios: {ratios}", flush=True)
    return result


# -----------------------------------------------------------------------------
# Report


def markdown(payload: dict[str, Any]) -> str:
    header = ["model", "base", "params", "N groups", *[f"{p} ratio" for p in PHASES], "base step ms", "selection ms", "≤ 1.10 outside selection"]
    rows = []
    for r in payload["results"]:
        ph = r["phases"]
        rows.append([r["model"], r["base"], f"{r['parameters'] / 1e6:.1f} M", f"{r['num_groups']:,}",
                     *[f"{ph[p]['ratio']:.3f}" for p in PHASES], f"{ph['decay']['base_ms']:.1f}",
                     f"{ph['selection']['hesso_ms']:.1f}", "yes" if r["target_met"] else "NO"])
    config, env = payload["config"], payload["environment"]
    return "\n".join([
        "# Overhead: HESSO step() / base optimizer step()",
        "",
        f"Ratio of median step times (HESSO wrapping the base / the same base alone), interleaved, gradients "
        f"fixed. Schedule: {config['before']} steps before start_step, {config['periods']} periods of "
        f"{config['period_length']} steps (the first of each is the selection step), {config['hold']} hold steps; "
        f"target sparsity {config['sparsity']}; {config['warmup']} untimed warm-up steps first. "
        f"{env['cpu']}, {config['threads']} threads, torch {env['torch']}.",
        "",
        markdown_table(header, rows),
        "",
        f"Target: ratio <= {TARGET_RATIO} on non-selection steps (before, decay, hold) for every model and base: "
        f"{'met' if payload['target_met'] else 'NOT met (see the last column)'}.",
        "",
        f"Wall clock: {payload['wall_seconds'] / 60:.1f} min.",
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny ResNet and BERT, 4 steps per phase")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for overhead.json / overhead.md")
    p.add_argument("--models", default="resnet50,bert_base", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--bases", default="sgd_momentum,adamw", help=f"comma-separated, from {', '.join(BASES)}")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: the 2-core machine is shared)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--before", type=int, default=40, help="steps before start_step")
    p.add_argument("--periods", type=int, default=10, help="HESSO periods (its default)")
    p.add_argument("--period-length", type=int, default=10, help="steps per period (1 selection + the rest decay)")
    p.add_argument("--hold", type=int, default=40, help="steps after the last period")
    p.add_argument("--warmup", type=int, default=10, help="untimed base steps on both copies before the timeline")
    p.add_argument("--verbose", action="store_true", help="print every step")
    args = p.parse_args(argv)
    if args.quick:
        args.models = "resnet_tiny,bert_tiny" if "--models" not in (argv if argv is not None else sys.argv) else args.models
        args.before, args.periods, args.period_length, args.hold, args.warmup = 4, 2, 4, 4, 2
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = [measure(model, base, args) for model in args.models.split(",") for base in args.bases.split(",")]
    payload = {"benchmark": "overhead", "environment": environment(), "config": {k: (display_path(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "target": f"HESSO step / base step <= {TARGET_RATIO} on non-selection steps", "results": results,
               "target_met": all(r["target_met"] for r in results), "wall_seconds": round(time.perf_counter() - started, 1)}
    write_results(args.out, "overhead", payload, markdown(payload))
    return payload


if __name__ == "__main__":
    main()
