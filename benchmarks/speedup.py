"""Real CPU speed of compact models: latency ratio (compact / full) next to the MAC ratio.

A structurally pruned model promises a speed-up of ``1 / MAC ratio``; what it delivers on a CPU is
``1 / latency ratio``. The benchmark reports ``% of ideal = MAC ratio / latency ratio`` (100% = as
fast as the MACs say) for CNNs at ImageNet (224x224) and CIFAR (32x32) input sizes and, reported
apart and outside the CNN target, two transformers. Target: >= 80% of the ideal speed-up for CNNs.

Method, per model:

* every prunable node group loses a random ``sparsity`` of its channels
  (``SearchSpace.zero_random``; each layer loses about that fraction, as after HESSO), rounded with
  ``divisible`` the way ``HESSO(group_divisible=...)`` rounds, so kept widths are multiples of it;
  the compact model is built with ``space.construct()`` (exactness checked there);
* MACs (``trainonce.metrics.count_macs``: convolutions, linear/matmul, attention) and parameters
  of every compact model are counted at the timed resolution;
* latency: the full model and all its compact models are timed in interleaved rounds
  (``trainonce.metrics.measure_latencies``: eval mode, ``torch.inference_mode``, warm-up first,
  order rotated every round), so a busy spell of the shared machine hits all of them alike; the
  latency ratio is the ratio of medians (the median of per-round ratios is kept as a check). On
  one thread the verdict uses the CPU time of that thread, which is the latency of an idle core
  whatever other jobs on the 2 shared cores do; the wall clock is reported next to it;
* execution variants, always applied to the full and the compact models alike: ``eager``
  (NCHW, as built), ``channels_last`` (NHWC memory format, what oneDNN computes in natively) and
  ``fold_bn`` (``trainonce.metrics.fold_batchnorm``: eval BatchNorm folded into the conv before it).

``--investigate`` (on unless ``--quick``) adds the numbers that explain the gap: a ``torch.profiler`` breakdown of one
model's latency by operator family (how much of it is not convolution, and how each family
shrinks), and the throughput of one convolution as its channel count varies (why widths that
are multiples of 8/16 matter to oneDNN).

    python benchmarks/speedup.py --lock /tmp/trainonce-bench.lock   # everything (~40 min of timing on 2 cores)
    python benchmarks/speedup.py --quick                            # ResNet-18 CIFAR, one sparsity (< 30 s)
    python benchmarks/speedup.py --render benchmarks/results/speedup.json   # tables again, no timing
    python benchmarks/speedup.py --retime benchmarks/results/speedup.json --models resnet50 --threads 2 \
        --variants eager --no-investigate --lock /tmp/trainonce-bench.lock   # redo cells other jobs spoiled

``--lock PATH`` holds ``flock(PATH)`` around each timing block only (analysis, construction and
MAC counting run outside it), which is the same lock ``flock PATH python ...`` takes for a whole
run; do not combine the two (the inner lock would wait for the outer one forever).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `zoo` importable
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import trainonce  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    bench_lock,
    count,
    display_path,
    environment,
    markdown_table,
    write_results,
)
from trainonce.graph.capture import capture  # noqa: E402
from trainonce.graph.inputs import ExampleInputs  # noqa: E402
from trainonce.metrics import (  # noqa: E402
    LatencyReport,
    count_macs,
    count_parameters,
    fold_batchnorm,
    measure_latencies,
    to_channels_last,
)

TARGET = 0.80  # fraction of the ideal (MAC-predicted) speed-up that a CNN must reach

# -----------------------------------------------------------------------------
# Models: zoo building blocks in their standard ImageNet / CIFAR configurations


@dataclass(frozen=True)
class Workload:
    """A model and the input shape it is timed at (``batches`` x ``shape``)."""

    name: str
    family: str  # "cnn" (judged against the target) or "transformer" (reported apart)
    build: Callable[[], nn.Module]
    inputs: Callable[[int], Any]  # batch size -> example inputs
    resolution: str  # what the input is, for the tables

    def example(self, batch: int) -> Any:
        torch.manual_seed(0)
        return self.inputs(batch)


def image(size: int) -> Callable[[int], torch.Tensor]:
    return lambda batch: torch.randn(batch, 3, size, size)


def resnet50() -> nn.Module:
    """torchvision's ResNet-50 layout (ImageNet stem, 1000 classes), 4.1 GMACs at 224."""
    from zoo.init import finalize
    from zoo.resnet import Bottleneck, ResNet

    return finalize(ResNet(Bottleneck, (3, 4, 6, 3), num_classes=1000, imagenet_stem=True))


def vgg16_bn() -> nn.Module:
    """VGG-16-BN for 224x224: the zoo's conv stack, torchvision's 7x7 pool and 4096-4096-1000 head."""
    from zoo.init import finalize
    from zoo.vgg import VGG

    model = VGG(num_classes=1000)
    model.features.append(nn.AdaptiveAvgPool2d(7))
    model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                                     nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, 1000))
    return finalize(model)


def mobilenetv2() -> nn.Module:
    """MobileNetV2 1.0 with the ImageNet strides (stride-2 stem and second stage), 0.3 GMACs at 224."""
    from zoo.init import finalize
    from zoo.layers import ConvBNAct
    from zoo.mobilenet import MobileNetV2

    class ImageNetMobileNetV2(MobileNetV2):
        SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    model = ImageNetMobileNetV2(1.0, num_classes=1000)
    model.features[0] = ConvBNAct(3, 32, 3, 2, act=nn.ReLU6)
    return finalize(model)


def resnext50() -> nn.Module:
    """ResNeXt-50 32x4d from the zoo's grouped-conv block (ImageNet stem, 4.2 GMACs at 224)."""
    from zoo.init import finalize
    from zoo.resnext import ResNeXtBlock

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    c_in = 64
    for stage, depth in enumerate((3, 4, 6, 3)):
        for index in range(depth):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(ResNeXtBlock(c_in, 256 * 2**stage, stride, cardinality=32, group_width=4 * 2**stage))
            c_in = 256 * 2**stage
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 1000)]
    return finalize(nn.Sequential(*layers))


def densenet121() -> nn.Module:
    """DenseNet-121 (growth 32, blocks 6/12/24/16) with the ImageNet stem, 2.9 GMACs at 224."""
    from zoo.densenet import DenseNet
    from zoo.init import finalize

    model = DenseNet(growth=32, block_config=(6, 12, 24, 16), init_features=64, num_classes=1000)
    model.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    return finalize(model)


def convnext_tiny() -> nn.Module:
    """ConvNeXt-T (dims 96-768, depths 3/3/9/3) with its 4x4/4 patchify stem, 4.5 GMACs at 224."""
    from zoo.convnext import ConvNeXt
    from zoo.init import finalize
    from zoo.layers import LayerNorm2d

    model = ConvNeXt(dims=(96, 192, 384, 768), depths=(3, 3, 9, 3), num_classes=1000)
    model.downsample_layers[0] = nn.Sequential(nn.Conv2d(3, 96, 4, stride=4), LayerNorm2d(96))
    return finalize(model)


def cifar(factory: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from zoo import build as build_zoo

        return build_zoo(factory)[0]

    build.__doc__ = f"zoo.{factory}"
    return build


def mobilenetv2_cifar() -> nn.Module:
    """MobileNetV2 1.0 with CIFAR strides (the zoo's class at full width)."""
    from zoo.init import finalize
    from zoo.mobilenet import MobileNetV2

    torch.manual_seed(0)
    return finalize(MobileNetV2(1.0))


def vit_s16() -> nn.Module:
    """ViT-S/16 (dim 384, 6 heads, depth 12) at 224, eager attention so that heads are prunable."""
    from zoo.init import finalize
    from zoo.vit import VisionTransformer

    return finalize(VisionTransformer(img_size=224, patch=16, dim=384, depth=12, num_heads=6, num_classes=1000, fused_attn=False))


def bert_base() -> nn.Module:
    """BERT-base encoder (random init), SDPA attention."""
    from transformers import BertModel

    from zoo.hf import bert_base_config

    return BertModel(bert_base_config(attn_implementation="sdpa")).eval()


def text(length: int) -> Callable[[int], dict[str, torch.Tensor]]:
    def inputs(batch: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 30522, (batch, length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return inputs


WORKLOADS = {w.name: w for w in [
    Workload("resnet50", "cnn", resnet50, image(224), "224x224"),
    Workload("vgg16_bn", "cnn", vgg16_bn, image(224), "224x224"),
    Workload("mobilenetv2", "cnn", mobilenetv2, image(224), "224x224"),
    Workload("resnext50_32x4d", "cnn", resnext50, image(224), "224x224"),
    Workload("densenet121", "cnn", densenet121, image(224), "224x224"),
    Workload("convnext_tiny", "cnn", convnext_tiny, image(224), "224x224"),
    Workload("resnet18_cifar", "cnn", cifar("resnet18_cifar"), image(32), "32x32"),
    Workload("resnet50_cifar", "cnn", cifar("resnet50_cifar"), image(32), "32x32"),
    Workload("vgg16_bn_cifar", "cnn", cifar("vgg16_bn"), image(32), "32x32"),
    Workload("mobilenetv2_cifar", "cnn", mobilenetv2_cifar, image(32), "32x32"),
    Workload("vit_s16", "transformer", vit_s16, image(224), "224x224"),
    Workload("bert_base", "transformer", bert_base, text(128), "128 tokens"),
]}

# -----------------------------------------------------------------------------
# Execution variants: the same transformation for the full and the compact model


VARIANTS: dict[str, Callable[[nn.Module, Any], tuple[nn.Module, Any]]] = {
    "eager": lambda model, inputs: (model, inputs),
    "channels_last": to_channels_last,
    "fold_bn": lambda model, inputs: (fold_batchnorm(model), inputs),
}
CNN_ONLY = {"channels_last", "fold_bn"}
JUDGED_THREADS = 1  # the shared 2-core machine reliably gives one core; see contention()


def cells_for(workload: Workload, args: argparse.Namespace) -> list[tuple[int, int, str]]:
    """(batch, threads, variant) cells to time for one workload.

    Batch 1 in every variant on one thread, eager on the other thread counts; for CNNs also
    throughput inference (batch 16 at 224x224, 32 at 32x32) eager and channels-last on one
    thread. A large-batch round costs 16-32 batch-1 rounds, so it gets a third of the rounds.
    """
    variants = [v for v in args.variants if workload.family == "cnn" or v not in CNN_ONLY]
    cells = [(1, threads, variant) for threads in args.threads for variant in variants
             if variant == "eager" or threads == JUDGED_THREADS]
    if workload.family == "cnn" and not args.quick and JUDGED_THREADS in args.threads:
        large = 32 if workload.resolution == "32x32" else 16
        cells += [(large, JUDGED_THREADS, v) for v in variants if v != "fold_bn"]
    return cells


def rounds_for(batch: int, args: argparse.Namespace) -> int:
    return args.repeats if batch == 1 else max(3, args.repeats // 3)

# -----------------------------------------------------------------------------
# Measurement


@dataclass
class Compact:
    sparsity: float
    divisible: int
    group_sparsity: float  # groups actually zeroed / N (divisible rounding may fall short)
    model: nn.Module


def build_compacts(workload: Workload, full: nn.Module, args: argparse.Namespace) -> tuple[list[Compact], dict[str, Any]]:
    """Analyse once, then one compact model per (sparsity, divisible); the full model is restored."""
    began = time.perf_counter()
    space = trainonce.analyze(full, workload.example(1))
    analyze_s = time.perf_counter() - began
    saved = {k: v.clone() for k, v in full.state_dict().items()}
    compacts = []
    began = time.perf_counter()
    for sparsity in args.sparsity:
        for divisible in args.divisible:
            redundant = space.zero_random(sparsity, seed=args.seed, divisible=divisible)
            removed = sum(len(v) for v in redundant.values())
            compacts.append(Compact(sparsity, divisible, removed / space.num_prunable, space.construct().eval()))
            full.load_state_dict(saved)
    info = {"num_groups": space.num_prunable, "node_groups": len(space.prunable_groups), "analyze_s": round(analyze_s, 2),
            "construct_s_each": round((time.perf_counter() - began) / max(1, len(compacts)), 2)}
    return compacts, info


def macs_of(model: nn.Module, inputs: Any) -> int:
    return count_macs(capture(model, inputs)[0]).total


def ratio_stats(full: tuple[float, ...], compact: tuple[float, ...]) -> tuple[float, float, float]:
    """Median, p10 and p90 of the per-round compact / full ratios (the rounds are interleaved)."""
    ratios = sorted(c / f for c, f in zip(compact, full, strict=True))
    deciles = statistics.quantiles(ratios, n=10, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 9
    return statistics.median(ratios), deciles[0], deciles[-1]


def time_cell(full: nn.Module, compacts: list[Compact], inputs: Any, variant: str, threads: int, repeats: int,
              warmup: int) -> list[LatencyReport]:
    """Latency of the full model (first) and of every compact model, interleaved."""
    prepared = [VARIANTS[variant](model, inputs) for model in [full, *(c.model for c in compacts)]]
    models = [model for model, _ in prepared]
    return measure_latencies(models, prepared[0][1], warmup=warmup, repeats=repeats, threads=threads)


def measure(workload: Workload, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Every cell of ``cells_for(workload)``: one row per (cell, sparsity, divisible)."""
    torch.manual_seed(args.seed)  # the same weights on every run (the widths depend on the seed alone)
    full = workload.build()
    compacts, info = build_compacts(workload, full, args)
    log(f"{workload.name}: N={info['num_groups']}, analyze {info['analyze_s']} s, construct {info['construct_s_each']} s each")
    example = workload.example(1)
    full_macs, full_params = macs_of(full, example), count_parameters(full)
    sizes = [(macs_of(c.model, example) / full_macs, count_parameters(c.model) / full_params) for c in compacts]
    rows = []
    for batch, threads, variant in cells_for(workload, args):
        inputs, rounds = workload.example(batch), rounds_for(batch, args)
        with bench_lock(args.lock):
            load = os.getloadavg()[0]
            began = time.perf_counter()
            reports = time_cell(full, compacts, inputs, variant, threads, rounds, args.warmup)
        base = reports[0]
        log(f"  batch {batch}, {threads} thread(s), {variant}: full {base.median:.1f} ms (CPU {base.cpu_median:.1f}), "
            f"load {load:.1f} ({time.perf_counter() - began:.0f} s)")
        for compact, (mac_ratio, params_ratio), report in zip(compacts, sizes, reports[1:], strict=True):
            paired, p10, p90 = ratio_stats(base.samples, report.samples)
            latency_ratio = report.median / base.median
            row = {
                "model": workload.name, "family": workload.family, "input": f"{batch}x{workload.resolution}", "batch": batch,
                "threads": threads, "variant": variant, "sparsity": compact.sparsity, "divisible": compact.divisible,
                "group_sparsity": round(compact.group_sparsity, 4), "params_ratio": round(params_ratio, 4),
                "macs_ratio": round(mac_ratio, 4), "full_ms": round(base.median, 3), "compact_ms": round(report.median, 3),
                "latency_ratio": round(latency_ratio, 4), "paired_ratio": round(paired, 4),
                "paired_p10": round(p10, 4), "paired_p90": round(p90, 4), "rounds": rounds, "load_1min": round(load, 2),
                "ideal_fraction": round(mac_ratio / latency_ratio, 4),
            }
            if threads == 1:  # CPU time is a latency only when one thread does all the work
                cpu_ratio = report.cpu_median / base.cpu_median
                row |= {"full_cpu_ms": round(base.cpu_median, 3), "compact_cpu_ms": round(report.cpu_median, 3),
                        "cpu_latency_ratio": round(cpu_ratio, 4), "cpu_ideal_fraction": round(mac_ratio / cpu_ratio, 4)}
            rows.append(row)
    result = {"model": workload.name, "family": workload.family, "description": (workload.build.__doc__ or "").strip(),
              "params": full_params, "macs_batch1": full_macs, **info, "rows": rows}
    del full, compacts
    gc.collect()
    return result

# -----------------------------------------------------------------------------
# Investigation: where the time goes, and why channel counts matter


FAMILIES = (  # profiler op name fragments -> family, first match wins
    ("conv", "conv"), ("batch_norm", "batch_norm"), ("layer_norm", "norm"),
    ("addmm", "linear"), ("linear", "linear"), ("matmul", "linear"), ("bmm", "linear"), ("mm", "linear"),
    ("relu", "activation"), ("clamp", "activation"), ("hardtanh", "activation"), ("gelu", "activation"),
    ("add", "add"), ("pool", "pool"), ("mean", "pool"), ("cat", "concat"),
    ("copy", "layout"), ("contiguous", "layout"), ("reorder", "layout"),
)


def family_of(op: str) -> str:
    name = op.removeprefix("aten::")
    return next((family for fragment, family in FAMILIES if fragment in name), "other")


def profile_breakdown(models: dict[str, tuple[nn.Module, ExampleInputs]], rounds: int, passes: int) -> dict[str, dict[str, float]]:
    """Milliseconds per pass by operator family (``torch.profiler`` self CPU time), one thread.

    Profiled in interleaved rounds and reduced to the median per family, for the same reason the
    latencies are. ``unattributed`` is wall time minus every operator's self time: Python, module
    calls and dispatch around the operators, a cost that does not shrink with the widths.
    """
    from torch.profiler import ProfilerActivity, profile

    from trainonce.metrics.latency import eval_mode, num_threads

    per_round: dict[str, list[dict[str, float]]] = {label: [] for label in models}
    with contextlib.ExitStack() as stack:
        for model, _ in models.values():
            stack.enter_context(eval_mode(model))
        stack.enter_context(num_threads(1))
        stack.enter_context(torch.inference_mode())
        for model, inputs in models.values():
            for _ in range(3):
                inputs.call(model)
        labels = list(models)
        for round_ in range(rounds):
            for label in labels[round_ % len(labels):] + labels[:round_ % len(labels)]:
                model, inputs = models[label]
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    began = time.perf_counter()
                    for _ in range(passes):
                        inputs.call(model)
                    wall = (time.perf_counter() - began) * 1e3 / passes
                totals: dict[str, float] = {}
                for event in prof.key_averages():
                    family = family_of(event.key)
                    totals[family] = totals.get(family, 0.0) + event.self_cpu_time_total / 1e3 / passes
                totals["unattributed"] = max(0.0, wall - sum(totals.values()))
                totals["wall"] = wall
                per_round[label].append(totals)
    return {label: {family: round(statistics.median(r.get(family, 0.0) for r in rounds_), 3)
                    for family in {f for r in rounds_ for f in r}} for label, rounds_ in per_round.items()}


def investigate_profile(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """One CNN at batch 1 on one thread: the full model against compact ones, eager and channels-last."""
    workload = WORKLOADS[args.profile_model]
    full = workload.build()
    settings = argparse.Namespace(sparsity=[0.5, 0.7], divisible=[1, 16], seed=args.seed)
    compacts, _ = build_compacts(workload, full, settings)
    inputs = workload.example(1)
    models = {}
    for variant in ("eager", "channels_last"):
        for label, model in [("full", full), *((f"{c.sparsity:.0%} d{c.divisible}", c.model) for c in compacts)]:
            prepared, prepared_inputs = VARIANTS[variant](model, inputs)
            models[f"{variant}: {label}"] = (prepared, ExampleInputs.of(prepared_inputs))
    full_macs = macs_of(full, inputs)
    macs_ratio = {label: macs_of(model, inputs) / full_macs for label, model in
                  [("full", full), *((f"{c.sparsity:.0%} d{c.divisible}", c.model) for c in compacts)]}
    with bench_lock(args.lock):
        profiles = profile_breakdown(models, args.profile_rounds, passes=3)
    log(f"profiled {workload.name}")
    return {"model": workload.name, "input": f"1x{workload.resolution}", "threads": 1, "profiles": profiles,
            "macs_ratio": {label: round(macs_ratio[label.split(": ")[1]], 4) for label in profiles}}


SWEEP_WIDTHS = tuple(range(48, 137))


def conv_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Throughput of one convolution (56x56 like ResNet-50 stage 1, batch 1, one thread) for every width from 48 to 136.

    ``C_in = C_out = c``, so each step in ``c`` is one more pruned or kept channel on both sides,
    which is what random pruning without rounding produces. The widths are timed in interleaved
    rounds (one pass of each per round) by the CPU time of the one thread, medians kept.
    """
    rows = []
    with bench_lock(args.lock), torch.inference_mode():
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        for kernel in (3, 1):
            for variant in ("eager", "channels_last"):
                cases = [VARIANTS[variant](nn.Conv2d(c, c, kernel, padding=kernel // 2, bias=False).eval(), torch.randn(1, c, 56, 56))
                         for c in SWEEP_WIDTHS]
                calls = [(conv, ExampleInputs.of(x)) for conv, x in cases]
                for conv, x in calls:
                    for _ in range(3):
                        x.call(conv)
                samples: list[list[float]] = [[] for _ in calls]
                for _ in range(args.sweep_repeats):
                    for index, (conv, x) in enumerate(calls):
                        began = time.thread_time()
                        x.call(conv)
                        samples[index].append(time.thread_time() - began)
                for c, times in zip(SWEEP_WIDTHS, samples, strict=True):
                    seconds = statistics.median(times)
                    rows.append({"kernel": kernel, "variant": variant, "channels": c, "ms": round(seconds * 1e3, 4),
                                 "gmacs_per_s": round(56 * 56 * c * c * kernel * kernel / seconds / 1e9, 2)})
        torch.set_num_threads(previous)
    return rows


def sweep_summary(sweep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean throughput per (kernel, variant) for widths that are multiples of 16, of 8 only, and the rest."""
    classes = {"multiple of 16": lambda c: c % 16 == 0, "multiple of 8, not 16": lambda c: c % 8 == 0 and c % 16 != 0,
               "not a multiple of 8": lambda c: c % 8 != 0}
    out = []
    for kernel, variant in sorted({(r["kernel"], r["variant"]) for r in sweep}, key=lambda kv: (-kv[0], kv[1])):
        series = [r for r in sweep if r["kernel"] == kernel and r["variant"] == variant]
        means = {name: statistics.fmean(r["gmacs_per_s"] for r in series if test(r["channels"])) for name, test in classes.items()}
        out.append({"kernel": kernel, "variant": variant, **{k: round(v, 2) for k, v in means.items()}})
    return out

# -----------------------------------------------------------------------------
# Report


def judged_fraction(row: dict[str, Any]) -> float:
    """The % of ideal a row is judged by: from CPU time on one thread, from wall time otherwise.

    One thread does all the work on one core, so its CPU time is the latency an idle machine
    would show, whatever other jobs did to the wall clock meanwhile (``LatencyReport.cpu_samples``);
    with more threads only the wall clock measures latency.
    """
    return float(row.get("cpu_ideal_fraction", row["ideal_fraction"]))


def verdicts(results: list[dict[str, Any]], sparsities: list[float], divisibles: list[int]) -> list[dict[str, Any]]:
    """Per CNN, input, threads and variant: % of ideal for each (sparsity, divisible), against the target."""
    out = []
    for result in results:
        if result["family"] != "cnn":
            continue
        cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for row in result["rows"]:
            cells.setdefault((row["input"], row["threads"], row["variant"]), []).append(row)
        for (inputs, threads, variant), rows in cells.items():
            by_key = {(r["sparsity"], r["divisible"]): judged_fraction(r) for r in rows}
            best = {s: max((by_key[(s, d)], d) for d in divisibles if (s, d) in by_key)[1] for s in sparsities}
            out.append({"model": result["model"], "input": inputs, "threads": threads, "variant": variant,
                        "clock": "cpu" if all("cpu_ideal_fraction" in r for r in rows) else "wall",
                        "judged_fraction": {f"{s}/{d}": by_key[(s, d)] for s, d in sorted(by_key)},
                        "wall_fraction": {f"{r['sparsity']}/{r['divisible']}": r["ideal_fraction"] for r in rows},
                        "met_with_divisible_1": all(by_key[(s, 1)] >= TARGET for s in sparsities if (s, 1) in by_key),
                        "met_with_best_divisible": all(by_key[(s, best[s])] >= TARGET for s in sparsities),
                        "best_divisible": {str(s): best[s] for s in sparsities}})
    return out


def summarize(verdict_rows: list[dict[str, Any]], sparsities: list[float]) -> dict[str, Any]:
    """How many (model, input, variant) cells meet the target, on the judged thread count and the others,
    for both sparsities together and for each alone (with d=1, and with the best d)."""
    out: dict[str, Any] = {}
    for label, rows in (("judged", [v for v in verdict_rows if v["threads"] == JUDGED_THREADS]),
                        ("other_threads", [v for v in verdict_rows if v["threads"] != JUDGED_THREADS])):
        out[label] = {"cells": len(rows), "met_divisible_1": sum(v["met_with_divisible_1"] for v in rows),
                      "met_best_divisible": sum(v["met_with_best_divisible"] for v in rows)}
        for s in sparsities:
            fractions = [v["judged_fraction"] for v in rows]
            out[label][f"sparsity_{s}"] = {
                "met_divisible_1": sum(f.get(f"{s}/1", 0.0) >= TARGET for f in fractions),
                "met_best_divisible": sum(max(x for k, x in f.items() if k.startswith(f"{s}/")) >= TARGET for f in fractions)}
    return out


def contention(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch-1 eager latency of each full model on every thread count, with the load average seen.

    On a machine shared with other jobs a second OpenMP thread waits for a core that is busy
    elsewhere: when the full model is *slower* on two threads than on one, the two-thread cells
    measure the other jobs, not the model, and are reported but not judged.
    """
    out = []
    for result in results:
        seen = {r["threads"]: r for r in result["rows"] if r["batch"] == 1 and r["variant"] == "eager"}
        if len(seen) > 1:
            out.append({"model": result["model"], **{f"full_ms_{t}t": r["full_ms"] for t, r in sorted(seen.items())},
                        **{f"load_{t}t": r["load_1min"] for t, r in sorted(seen.items())},
                        "full_cpu_ms_1t": seen[1]["full_cpu_ms"] if 1 in seen else None})
    return out


def markdown(payload: dict[str, Any]) -> str:
    env, config = payload["environment"], payload["config"]
    keys = [(s, d) for s in config["sparsity"] for d in config["divisible"]]
    key_header = [f"{s:.0%}/d{d}" for s, d in keys]
    lines = [
        "# Speed-up: CPU latency of compact models against their MAC ratio",
        "",
        f"{env['cpu']} ({env['cpu_count']} cores, shared with other developers' jobs), torch {env['torch']}, "
        f"{env['date']}, commit {env['git_commit']}. Each node group loses a random `sparsity` of its channels "
        "(`SearchSpace.zero_random`, rounded like HESSO's `group_divisible` = d), `construct()` builds the compact "
        "model; full and compact models are timed in interleaved rounds (median; eval, `torch.inference_mode`, "
        "warm-up first). **% of ideal = MAC ratio / latency ratio** (100% = the speed-up the MACs promise). "
        f"Target for CNNs: >= {TARGET:.0%}, judged on {JUDGED_THREADS} thread (see Contention).",
        "",
        "## Verdict per CNN (% of ideal speed-up, sparsity/divisible)",
        "",
        "On one thread a cell is judged by the CPU time of that thread, the latency an idle machine would show "
        "(other jobs shared these 2 cores; the wall-clock figure follows in brackets); on two threads by wall time.",
        "",
    ]
    rows = []
    for v in payload["verdicts"]:
        cells = [percent_cell(v["judged_fraction"].get(f"{s}/{d}"), v["wall_fraction"].get(f"{s}/{d}") if v["clock"] == "cpu" else None)
                 for s, d in keys]
        best = ", ".join(f"d{d}" for d in v["best_divisible"].values())
        rows.append([v["model"], v["input"], str(v["threads"]), v["variant"], *cells, "yes" if v["met_with_divisible_1"] else "no",
                     f"yes ({best})" if v["met_with_best_divisible"] else f"no ({best})"])
    header = ["model", "input", "threads", "variant", *key_header, "met, d=1", "met, best d per sparsity"]
    lines += [markdown_table(header, rows), ""]
    judged, other = payload["summary"]["judged"], payload["summary"]["other_threads"]
    per_sparsity = "; ".join(
        f"at {s:.0%} alone {judged[f'sparsity_{s}']['met_divisible_1']} with d=1 and {judged[f'sparsity_{s}']['met_best_divisible']} "
        f"with the best d" for s in config["sparsity"])
    lines += [f"Cells meeting the target on {JUDGED_THREADS} thread at every sparsity: {judged['met_divisible_1']} of {judged['cells']} "
              f"with the default widths (d=1), {judged['met_best_divisible']} of {judged['cells']} with the best d per sparsity; "
              f"{per_sparsity}. Other thread counts (wall clock, not judged): {other['met_divisible_1']} (d=1) and "
              f"{other['met_best_divisible']} (best d) of {other['cells']}.", ""]
    uneven = unequal_macs(payload["results"])
    if uneven:
        lines += ["MAC ratios differ with d here: " + ", ".join(uneven) + ". With d > 1, node groups no wider than d stay "
                  "whole (as under HESSO's `group_divisible`: per-group widths of grouped convs, head counts, narrow stages) "
                  "and the same number of groups is taken from wider ones, so those models lose fewer MACs and their "
                  "% of ideal across d is not compared at equal MACs.", ""]
    transformer_rows = []
    for result in payload["results"]:
        if result["family"] == "cnn":
            continue
        grouped: dict[tuple[str, int, str], dict[tuple[float, int], dict[str, Any]]] = {}
        for r in result["rows"]:
            grouped.setdefault((r["input"], r["threads"], r["variant"]), {})[(r["sparsity"], r["divisible"])] = r
        for (inputs, threads, variant), by_key in grouped.items():
            transformer_rows.append([result["model"], inputs, str(threads), variant, *[
                f"{percent_cell(judged_fraction(by_key[k]), by_key[k]['ideal_fraction'] if threads == 1 else None)}, "
                f"MACs {by_key[k]['macs_ratio']:.2f}"
                if k in by_key else "-" for k in keys]])
    if transformer_rows:
        lines += ["## Transformers (reported apart, not in the CNN target): % of ideal as above, and the MAC ratio", "",
                  markdown_table(["model", "input", "threads", "variant", *key_header], transformer_rows), ""]
    if payload["contention"]:
        counts = sorted({int(k.removeprefix("full_ms_").removesuffix("t")) for c in payload["contention"] for k in c if k.startswith("full_ms_")})
        rows = [[c["model"], *[f"{c[f'full_ms_{t}t']:.1f}" for t in counts], f"{c['full_cpu_ms_1t'] or math.nan:.1f}",
                 *[f"{c[f'load_{t}t']:.1f}" for t in counts]] for c in payload["contention"]]
        lines += ["## Contention: full model, batch 1, eager", "",
                  "Wall-clock medians on each thread count, the CPU time of the single thread (what an idle core takes), and "
                  "the 1-minute load average when the cell started (2 cores). A model not clearly faster on two threads than "
                  "the single thread's CPU time means the second core was busy with other jobs: such two-thread cells measure "
                  "the machine, not the model.", "",
                  markdown_table(["model", *[f"{t} thread ms" for t in counts], "1 thread CPU ms",
                                  *[f"load ({t} thread)" for t in counts]], rows), ""]
    if payload.get("profile"):
        lines += profile_markdown(payload["profile"])
    if payload.get("conv_sweep"):
        lines += sweep_markdown(payload["conv_sweep"])
    lines += ["## All measurements", ""]
    header = ["model", "input", "thr", "variant", "sparsity", "d", "groups zeroed", "params", "MACs", "full ms", "compact ms",
              "latency", "paired (p10-p90)", "% ideal", "CPU latency", "% ideal (CPU)", "load"]
    rows = []
    for result in payload["results"]:
        for r in result["rows"]:
            cpu = [f"{r['cpu_latency_ratio']:.3f}", f"{100 * r['cpu_ideal_fraction']:.0f}%"] if "cpu_latency_ratio" in r else ["-", "-"]
            rows.append([r["model"], r["input"], str(r["threads"]), r["variant"], f"{r['sparsity']:.0%}", str(r["divisible"]),
                         f"{r['group_sparsity']:.1%}", f"{r['params_ratio']:.3f}", f"{r['macs_ratio']:.3f}", f"{r['full_ms']:.1f}",
                         f"{r['compact_ms']:.1f}", f"{r['latency_ratio']:.3f}",
                         f"{r['paired_ratio']:.3f} ({r['paired_p10']:.3f}-{r['paired_p90']:.3f})", f"{100 * r['ideal_fraction']:.0f}%",
                         *cpu, f"{r['load_1min']:.1f}"])
    lines += [markdown_table(header, rows), ""]
    models = [[r["model"], r["family"], count(r["params"]), count(r["macs_batch1"]), f"{r['num_groups']:,}", str(r["analyze_s"]),
               str(r["construct_s_each"]), r["description"]] for r in payload["results"]]
    lines += ["## Models", "", markdown_table(["model", "family", "params", "MACs (batch 1)", "N groups", "analyze s", "construct s",
                                                 "what"], models), ""]
    for note in payload.get("retimed", []):
        lines.append(f"Re-timed on {note['date']} (commit {note['git_commit']}): {note['models']}, threads {note['threads']}, "
                     f"variants {note['variants']}; those rows replace the first run's.")
    lines.append(f"Wall clock: {payload['wall_seconds'] / 60:.1f} min (first run).")
    return "\n".join(lines)


def unequal_macs(results: list[dict[str, Any]], tolerance: float = 0.02) -> list[str]:
    """``model (s: ratio at each d)`` wherever the MAC ratio at one sparsity moves by more than ``tolerance`` with d."""
    out = []
    for result in results:
        by_sparsity: dict[float, dict[int, float]] = {}
        for row in result["rows"]:
            by_sparsity.setdefault(row["sparsity"], {})[row["divisible"]] = row["macs_ratio"]
        for sparsity, ratios in sorted(by_sparsity.items()):
            if max(ratios.values()) - min(ratios.values()) > tolerance:
                shown = "/".join(f"{ratios[d]:.2f}" for d in sorted(ratios))
                out.append(f"{result['model']} at {sparsity:.0%} (MACs {shown} for d={'/'.join(map(str, sorted(ratios)))})")
    return out


def percent_cell(judged: float | None, wall: float | None) -> str:
    """``judged`` as a percentage, then the wall-clock one in brackets when the judged one is from CPU time."""
    if judged is None:
        return "-"
    return f"{100 * judged:.0f}%" + (f" ({100 * wall:.0f}%)" if wall is not None else "")


def profile_markdown(profile: dict[str, Any]) -> list[str]:
    """Milliseconds per family and model, then how conv and everything else shrink against the MACs."""
    profiles, macs = profile["profiles"], profile["macs_ratio"]
    first = next(iter(profiles.values()))
    families = sorted((f for f in {f for p in profiles.values() for f in p} if f != "wall"), key=lambda f: -first.get(f, 0.0))
    rows = [[family, *[f"{p.get(family, 0.0):.2f} ({100 * p.get(family, 0.0) / p['wall']:.0f}%)" for p in profiles.values()]]
            for family in [*families, "wall"]]
    lines = [f"## Where the time goes: {profile['model']}, {profile['input']}, 1 thread", "",
             "torch.profiler self CPU ms per pass (share of wall time), median over interleaved rounds; `unattributed` = wall "
             "time minus all operator self time (Python, module calls).", "",
             markdown_table(["operator family", *profiles], rows), ""]
    rows = []
    for label, p in profiles.items():
        variant = label.split(":")[0]
        full = profiles[f"{variant}: full"]
        if p is full:
            continue
        conv_ratio = p.get("conv", 0.0) / full["conv"]
        rest_ratio = (p["wall"] - p.get("conv", 0.0)) / (full["wall"] - full["conv"])
        # the best case for this compact model: its convolutions exactly as fast as their MACs say, the rest as measured
        cap = macs[label] * full["wall"] / (macs[label] * full["conv"] + p["wall"] - p.get("conv", 0.0))
        rows.append([label, f"{macs[label]:.3f}", f"{conv_ratio:.3f}", f"{macs[label] / conv_ratio:.0%}",
                     f"{rest_ratio:.3f}", f"{p['wall'] / full['wall']:.3f}", f"{macs[label] / (p['wall'] / full['wall']):.0%}",
                     f"{cap:.0%}"])
    lines += ["Against the full model: the convolutions' time ratio next to the MAC ratio (how much of their ideal they keep), "
              "the ratio of everything else (norms, activations, adds, pooling, Python: they scale with one factor of the width "
              "or not at all, MACs with two), and the % of ideal this compact model would reach if its convolutions were "
              "exactly as fast as their MACs (the cap that everything else sets).", "",
              markdown_table(["compact", "MAC ratio", "conv time ratio", "conv % of ideal", "non-conv time ratio", "wall ratio",
                              "% of ideal", "cap with ideal convs"], rows), ""]
    return lines


def sweep_markdown(sweep: list[dict[str, Any]]) -> list[str]:
    summary = sweep_summary(sweep)
    classes = [k for k in summary[0] if k not in ("kernel", "variant")]
    rows = [[f"{r['kernel']}x{r['kernel']}", r["variant"], *[f"{r[c]:.1f}" for c in classes]] for r in summary]
    lines = ["## One convolution against its width (C_in = C_out = 48..136, 56x56, batch 1, 1 thread)", "",
             "Mean GMAC/s over the widths of each class (every width in speedup.json):", "",
             markdown_table(["kernel", "variant", *classes], rows), ""]
    series = sorted({(r["kernel"], r["variant"]) for r in sweep}, key=lambda kv: (-kv[0], kv[1]))
    table = {(r["kernel"], r["variant"], r["channels"]): r["gmacs_per_s"] for r in sweep}
    rows = [[str(c), *[f"{table[(k, v, c)]:.1f}" for k, v in series]] for c in range(60, 74)]
    lines += ["GMAC/s around 64:", "", markdown_table(["C", *[f"{k}x{k} {v}" for k, v in series]], rows), ""]
    return lines


# -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="ResNet-18 CIFAR, 50%%, divisible 1 and 8, batch 1, 1 thread, few rounds")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for speedup.json / speedup.md")
    p.add_argument("--models", default=",".join(WORKLOADS), help=f"comma-separated, from {', '.join(WORKLOADS)}")
    p.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7])
    p.add_argument("--divisible", type=int, nargs="+", default=[1, 8, 16])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--repeats", type=int, default=15, help="timed rounds at batch 1 (a third of it at the large batch)")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes of every model before the rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--investigate", action=argparse.BooleanOptionalAction, default=None,
                   help="profile breakdown and convolution width sweep (default: on, off with --quick)")
    p.add_argument("--profile-model", default="resnet50", choices=list(WORKLOADS))
    p.add_argument("--profile-rounds", type=int, default=7)
    p.add_argument("--sweep-repeats", type=int, default=30)
    p.add_argument("--lock", type=Path, default=None, help="flock this file around each timing block")
    p.add_argument("--render", type=Path, default=None, metavar="SPEEDUP.JSON",
                   help="measure nothing: rebuild verdicts and tables from an earlier speedup.json")
    p.add_argument("--retime", type=Path, default=None, metavar="SPEEDUP.JSON",
                   help="time the selected cells again and put them in place of theirs in an earlier speedup.json "
                        "(e.g. --models resnet50 --threads 2 --variants eager when other jobs spoiled them)")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.sparsity, args.divisible, args.threads = "resnet18_cifar", [0.5], [1, 8], [1]
        args.variants, args.repeats, args.warmup = ["eager"], 5, 1
    if args.investigate is None:
        args.investigate = not args.quick
    return args


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["model"], row["input"], row["threads"], row["variant"], row["sparsity"], row["divisible"]


def retime(payload: dict[str, Any], results: list[dict[str, Any]], note: dict[str, Any]) -> None:
    """Put freshly timed rows in place of the rows of the same (model, input, threads, variant, sparsity, d).

    The compact models are rebuilt from the same seed, so they are the same models; only the
    timing is new. ``note`` (when, what) is kept in ``payload["retimed"]`` and printed.
    """
    fresh = {row_key(r): r for result in results for r in result["rows"]}
    for result in payload["results"]:
        result["rows"] = [fresh.pop(row_key(r), r) for r in result["rows"]]
        result["rows"] += [fresh.pop(key) for key in [k for k in fresh if k[0] == result["model"]]]
    payload.setdefault("retimed", []).append(note)


def checks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Target checks for ``trainonce bench --summary``: each CNN's eager cells on the judged thread count."""
    rows = []
    for v in payload["verdicts"]:
        if v["threads"] != JUDGED_THREADS or v["variant"] != "eager":
            continue
        for cell, fraction in v["judged_fraction"].items():
            sparsity, divisible = cell.split("/")
            rows.append({"case": f"{v['model']} {v['input']} s={float(sparsity):.0%} d={divisible}",
                         "measure": "% of ideal speed-up (MAC ratio / latency ratio)", "value": f"{fraction:.0%}",
                         "target": f">= {TARGET:.0%}", "met": fraction >= TARGET})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    began = time.perf_counter()
    torch.set_num_threads(max(args.threads))  # analysis and construction; timing sets its own

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:6.0f} s] {message}", flush=True)

    if args.render is not None:  # new tables from old measurements
        payload = json.loads(args.render.read_text())
    elif args.retime is not None:
        payload = json.loads(args.retime.read_text())
        results = [measure(WORKLOADS[name], args, log) for name in args.models.split(",")]
        retime(payload, results, {"date": environment()["date"], "git_commit": environment()["git_commit"],
                                  "models": args.models, "threads": args.threads, "variants": args.variants})
    else:
        payload = {"benchmark": "speedup", "environment": environment(),
                   "config": {k: (display_path(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "target": TARGET, "results": [measure(WORKLOADS[name], args, log) for name in args.models.split(",")]}
        if args.investigate:
            payload["profile"] = investigate_profile(args, log)
            payload["conv_sweep"] = conv_sweep(args)
        payload["wall_seconds"] = round(time.perf_counter() - began, 1)
    payload["verdicts"] = verdicts(payload["results"], payload["config"]["sparsity"], payload["config"]["divisible"])
    payload["summary"] = summarize(payload["verdicts"], payload["config"]["sparsity"])
    payload["contention"] = contention(payload["results"])
    payload["checks"] = checks(payload)
    write_results(args.out, "speedup", payload, markdown(payload))
    return payload


if __name__ == "__main__":
    main()
