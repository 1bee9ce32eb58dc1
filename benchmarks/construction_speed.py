"""Construction time and peak memory against one ``copy.deepcopy`` of the model.

BERT-base (110 M parameters) and a 1.1 B-parameter Llama configuration (16 layers, hidden 2048,
GQA 32/8, MLP 8192, vocabulary 32000: 4.4 GB in float32) are built with real random weights in
a fresh subprocess each, analysed, and half of their groups zeroed at random
(``space.zero_random(0.5)``). Then, interleaved ``--repeats`` times so that a busy spell on the
shared machine hits every side alike:

* ``copy.deepcopy(model)``: the reference a user would otherwise pay to get an independent model;
* ``space.construct(verify=False)``: finding the zero groups and building the compact model;
* ``space.construct()``: the same plus verification (the full and the compact model run on the
  example inputs and must agree), which is part of what ``construct`` does by default.

Times are medians; stages come from timers on the functions ``construct`` calls (``resolve``:
finding the zero groups, ``build``: the compact model, ``verify``: the two forward passes).
Memory is the exact peak RSS during each call above the RSS before it (the kernel's high-water
mark, reset just before), relative to the model's size. The child runs with a fixed glibc mmap
threshold, so that every freed tensor returns its pages and no call reuses memory another one
left behind.

Targets: construct <= 2x the time of one deepcopy; peak memory <= 2x the model's size, i.e. the
model plus at most one model size more (the compact model and anything transient).

    python benchmarks/construction_speed.py            # BERT-base, Llama 1.1 B (~3 min, ~10 GB peak RSS)
    python benchmarks/construction_speed.py --quick    # tiny BERT and Llama (smoke run, ~15 s)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `zoo` importable
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    bert_with_inputs,
    count,
    environment,
    markdown_table,
    peak_rss_bytes,
    reset_peak_rss,
    stage_timers,
    write_results,
)

TARGET_TIME_RATIO = 2.0
TARGET_MEMORY_RATIO = 2.0  # peak (model + what construct allocates) / model size
STAGES = {
    "resolve": "trainonce.construct.construct.resolve_redundant",
    "build": "trainonce.construct.construct.build_compact",
    "verify": "trainonce.construct.construct.verify",
}
# Above this size glibc serves an allocation by mmap and returns it to the kernel on free; fixed,
# it stops glibc from raising the threshold after a large free and keeping freed tensors' pages.
MMAP_THRESHOLD = str(256 * 1024)
Built = tuple[nn.Module, dict[str, torch.Tensor]]


def llama(layers: int, hidden: int, heads: int, kv_heads: int, mlp: int, vocab: int) -> Callable[[], Built]:
    def build() -> Built:
        from transformers import LlamaForCausalLM

        from zoo.hf import llama_config

        torch.manual_seed(0)
        model = LlamaForCausalLM(llama_config(layers, hidden, heads, kv_heads, mlp, vocab)).eval()
        return model, {"input_ids": torch.randint(0, vocab, (1, 16))}

    return build


CASES: dict[str, tuple[str, Callable[[], Built]]] = {
    "bert_base": ("BERT-base (12 layers, hidden 768), 16 tokens", lambda: bert_with_inputs(tiny=False)),
    "llama_1b": ("Llama 16 layers, hidden 2048, GQA 32/8, MLP 8192, vocab 32000, 16 tokens",
                 llama(16, 2048, 32, 8, 8192, 32000)),
}
QUICK_CASES: dict[str, tuple[str, Callable[[], Built]]] = {
    "bert_tiny": ("BERT, 2 layers, hidden 64", lambda: bert_with_inputs(tiny=True)),
    "llama_tiny": ("Llama, 2 layers, hidden 256, GQA 8/2, MLP 512, vocab 1000", llama(2, 256, 8, 2, 512, 1000)),
}


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (tied weights once)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def measured(function: Callable[[], Any]) -> tuple[float, int, Any]:
    """(seconds, peak RSS growth in bytes, result) of one call, after a garbage collection."""
    gc.collect()
    before = reset_peak_rss()
    began = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - began
    return seconds, peak_rss_bytes() - before, result


def run_case(name: str, threads: int, repeats: int) -> dict[str, Any]:
    """Build, analyse, zero and construct one model in this (fresh) process."""
    import trainonce

    torch.set_num_threads(threads)
    description, build = {**CASES, **QUICK_CASES}[name]
    began = time.perf_counter()
    model, inputs = build()
    build_model_s = time.perf_counter() - began
    model_bytes = tensor_bytes(model)
    began = time.perf_counter()
    space = trainonce.analyze(model, inputs)
    analyze_s = time.perf_counter() - began
    space.zero_random(0.5)

    times: dict[str, list[float]] = {"deepcopy": [], "construct_no_verify": [], "construct": []}
    peaks: dict[str, list[int]] = {key: [] for key in times}
    stages: dict[str, list[dict[str, float]]] = {"construct_no_verify": [], "construct": []}
    compact_bytes = compact_params = 0
    for _ in range(repeats):
        seconds, peak, clone = measured(lambda: copy.deepcopy(model))
        times["deepcopy"].append(seconds)
        peaks["deepcopy"].append(peak)
        del clone
        for key, verify in (("construct_no_verify", False), ("construct", True)):
            with stage_timers(STAGES) as split:
                seconds, peak, compact = measured(lambda verify=verify: space.construct(verify=verify))  # type: ignore[misc]
            times[key].append(seconds)
            peaks[key].append(peak)
            stages[key].append(dict(split))
            compact_bytes, compact_params = tensor_bytes(compact), sum(p.numel() for p in compact.parameters())
            del compact
    deepcopy_s = statistics.median(times["deepcopy"])
    result: dict[str, Any] = {
        "case": name,
        "description": description,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_gb": model_bytes / 1e9,
        "compact_parameters": compact_params,
        "compact_gb": compact_bytes / 1e9,
        "num_prunable": space.num_prunable,
        "build_model_s": build_model_s,
        "analyze_s": analyze_s,
        "repeats": repeats,
        "deepcopy_s": deepcopy_s,
        "deepcopy_peak_gb": max(peaks["deepcopy"]) / 1e9,
    }
    for key in ("construct_no_verify", "construct"):
        seconds = statistics.median(times[key])
        peak = max(peaks[key])
        result[key] = {
            "seconds": seconds,
            "all_seconds": times[key],
            "stages_s": {stage: statistics.median(s[stage] for s in stages[key]) for stage in STAGES},
            "time_ratio": seconds / deepcopy_s,
            "peak_growth_gb": peak / 1e9,
            "peak_ratio": (model_bytes + peak) / model_bytes,
            "time_met": seconds / deepcopy_s <= TARGET_TIME_RATIO,
            "memory_met": (model_bytes + peak) / model_bytes <= TARGET_MEMORY_RATIO,
        }
    return result


def summary(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Target checks for ``trainonce bench --summary``: time and memory of construct() with verification."""
    rows = []
    for r in payload["results"]:
        c = r["construct"]
        rows.append({"case": r["case"], "measure": "construct() time / deepcopy", "value": f"{c['time_ratio']:.2f}x",
                     "target": f"<= {TARGET_TIME_RATIO:g}x", "met": c["time_met"]})
        rows.append({"case": r["case"], "measure": "construct() peak memory / model", "value": f"{c['peak_ratio']:.2f}x",
                     "target": f"<= {TARGET_MEMORY_RATIO:g}x", "met": c["memory_met"]})
    return rows


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    rows = []
    for r in payload["results"]:
        for key, label in (("construct_no_verify", "construct(verify=False)"), ("construct", "construct()")):
            c = r[key]
            s = c["stages_s"]
            rows.append([r["case"], count(r["parameters"]), f"{r['model_gb']:.2f}", f"{r['compact_gb'] / r['model_gb']:.2f}",
                         label, f"{c['seconds']:.2f}", f"{s['resolve']:.2f}", f"{s['build']:.2f}", f"{s['verify']:.2f}",
                         f"{r['deepcopy_s']:.2f}", f"{c['time_ratio']:.2f}", "yes" if c["time_met"] else "NO",
                         f"{c['peak_growth_gb']:.2f}", f"{r['deepcopy_peak_gb']:.2f}", f"{c['peak_ratio']:.2f}",
                         "yes" if c["memory_met"] else "NO"])
    table = markdown_table(["case", "params", "model (GB)", "compact / model", "call", "time (s)", "resolve", "build",
                            "verify", "deepcopy (s)", "time / deepcopy", f"<= {TARGET_TIME_RATIO:g}x",
                            "peak +RSS (GB)", "deepcopy peak +RSS (GB)", "peak / model", f"<= {TARGET_MEMORY_RATIO:g}x"],
                           rows)
    config = payload["config"]
    return "\n".join([
        "# Construction: time and peak memory against one deepcopy",
        "",
        f"{env['cpu']}, {env['cpu_count']} cpus ({config['threads']} torch threads), torch {env['torch']}, "
        f"Python {env['python']}, commit {env['git_commit']}, {env['date']}. One fresh process per model, real random "
        f"weights, `space.zero_random(0.5)`; medians of {config['repeats']} interleaved repeats. Stages in seconds "
        "(`resolve`: finding the zero groups, `build`: the compact model, `verify`: full and compact forward). "
        "`peak +RSS`: exact peak RSS during the call above the RSS before it; `peak / model` = (model + peak "
        "growth) / model.",
        "",
        table,
        "",
        f"Targets: construct <= {TARGET_TIME_RATIO:g}x one deepcopy of the model, peak memory <= "
        f"{TARGET_MEMORY_RATIO:g}x the model's size.",
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny BERT and Llama (smoke run)")
    p.add_argument("--cases", help="comma-separated subset of the cases")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per case (default 5, quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: the 2-core machine is shared)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for construction_speed.json / .md")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    if args.case:
        print(json.dumps(run_case(args.case, args.threads, repeats)))
        return None
    cases = QUICK_CASES if args.quick else CASES
    names = args.cases.split(",") if args.cases else list(cases)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    rows = []
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--case", name, "--threads", str(args.threads),
                               "--repeats", str(repeats)], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"case {name} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:12s} deepcopy {row['deepcopy_s']:.2f} s  construct {row['construct']['seconds']:.2f} s "
              f"({row['construct']['time_ratio']:.2f}x)  peak {row['construct']['peak_ratio']:.2f}x model", flush=True)
    payload = {"benchmark": "construction_speed", "environment": environment(),
               "config": {"quick": args.quick, "threads": args.threads, "repeats": repeats, "cases": names,
                          "malloc_mmap_threshold": int(MMAP_THRESHOLD)},
               "targets": {"time": f"construct <= {TARGET_TIME_RATIO:g}x deepcopy",
                           "memory": f"peak <= {TARGET_MEMORY_RATIO:g}x model size"},
               "results": rows}
    payload["checks"] = summary(payload)
    write_results(args.out, "construction_speed", payload, markdown(payload))
    return payload


if __name__ == "__main__":
    main()
