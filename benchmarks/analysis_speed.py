"""Analysis time and peak memory of ``trainonce.analyze`` against graph size.

Models from ResNet-18 (69 ATen ops) to the Llama-7B configuration (1,925 ops). The ResNets and
BERT-base carry real (random) weights; the Llama configurations are built on the ``meta``
device, so a 7B-parameter model is analysed without allocating its weights. Each model runs in a
fresh subprocess, so that its peak memory is its own.

In that subprocess a tiny model of the same family is analysed first and timed separately as
the *first-call overhead* (torch.export's lazy imports and per-op caches: about a second that
every session pays once, whatever the model's size). The timed ``analyze`` is then the cost that
scales with the graph, split by stage: ``export`` (torch.export), ``ir`` (building trainonce's
graph from the export), ``propagate`` (the channel-space pass), ``groups`` (node groups) and
``probe`` (the constructibility probe). Peak memory is the exact peak RSS during ``analyze``
above the RSS before it (the kernel's high-water mark, reset just before).

Scaling is summarised by the least-squares slope of log(time) and log(peak memory growth)
against log(graph nodes): 1 is linear. Targets: linear scaling, Llama-7B analysed in <= 30 s.

    python benchmarks/analysis_speed.py            # 4 ResNets, BERT-base, 4 Llama configs (~75 s)
    python benchmarks/analysis_speed.py --quick    # tiny ResNet, BERT and Llama (smoke run, ~20 s)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    loglog_slope,
    markdown_table,
    peak_rss_bytes,
    reset_peak_rss,
    stage_timers,
    write_results,
)

TARGET_7B_SECONDS = 30.0
# What analyze calls, by the name it calls it under: patched with timers, so the split is of the
# real call. ``capture`` includes ``export``; the table shows ``ir`` = capture - export.
STAGES = {
    "export": "trainonce.graph.capture.export",
    "capture": "trainonce.groups.search_space.capture",
    "propagate": "trainonce.groups.search_space.propagate",
    "groups": "trainonce.groups.search_space.build_node_groups",
    "probe": "trainonce.construct.probe.probe_constructibility",
}
Built = tuple[nn.Module, Any]


def resnet(depth: int) -> Callable[[], Built]:
    def build() -> Built:
        from zoo.resnet import resnet_imagenet

        return resnet_imagenet(depth)

    return build


def llama_meta(layers: int, hidden: int, heads: int, kv_heads: int, mlp: int, vocab: int = 32000) -> Callable[[], Built]:
    def build() -> Built:
        from transformers import LlamaForCausalLM

        from zoo.hf import llama_config

        with torch.device("meta"):
            model = LlamaForCausalLM(llama_config(layers, hidden, heads, kv_heads, mlp, vocab)).eval()
        return model, {"input_ids": torch.zeros(1, 16, dtype=torch.long, device="meta")}

    return build


def tiny_resnet() -> Built:
    from zoo.resnet import resnet18_imagenet_small

    return resnet18_imagenet_small()


# name -> (description, family, builder); the family picks the warm-up model
CASES: dict[str, tuple[str, str, Callable[[], Built]]] = {
    "resnet18": ("ResNet-18, ImageNet 224x224, real weights", "resnet", resnet(18)),
    "resnet50": ("ResNet-50, ImageNet 224x224, real weights", "resnet", resnet(50)),
    "resnet101": ("ResNet-101, ImageNet 224x224, real weights", "resnet", resnet(101)),
    "resnet152": ("ResNet-152, ImageNet 224x224, real weights", "resnet", resnet(152)),
    "bert_base": ("BERT-base (12 layers, hidden 768), 16 tokens, real weights", "bert", lambda: bert_with_inputs(tiny=False)),
    "llama_1b_meta": ("Llama 16 layers, hidden 2048, GQA 32/8, MLP 8192 (1.1 B), on meta", "llama",
                      llama_meta(16, 2048, 32, 8, 8192)),
    "llama_7b_l8_meta": ("Llama-7B widths, 8 layers (1.9 B), on meta", "llama", llama_meta(8, 4096, 32, 32, 11008)),
    "llama_7b_l16_meta": ("Llama-7B widths, 16 layers (3.5 B), on meta", "llama", llama_meta(16, 4096, 32, 32, 11008)),
    "llama_7b_meta": ("Llama-7B config (32 layers, hidden 4096, 32 heads, MLP 11008), on meta", "llama",
                      llama_meta(32, 4096, 32, 32, 11008)),
}
QUICK_CASES: dict[str, tuple[str, str, Callable[[], Built]]] = {
    "resnet_tiny": ("ResNet-18, ImageNet stem, widths / 4, 64x64", "resnet", tiny_resnet),
    "bert_tiny": ("BERT, 2 layers, hidden 64", "bert", lambda: bert_with_inputs(tiny=True)),
    "llama_tiny_meta": ("Llama, 2 layers, hidden 256, GQA 8/2, on meta", "llama", llama_meta(2, 256, 8, 2, 512, 1000)),
}
WARM_UP = {"resnet": tiny_resnet, "bert": lambda: bert_with_inputs(tiny=True), "llama": llama_meta(1, 64, 4, 2, 128, 100)}


def run_case(name: str, threads: int) -> dict[str, Any]:
    """Analyse one model in this (fresh) process; every number is this process's own."""
    import trainonce

    torch.set_num_threads(threads)
    description, family, build = {**CASES, **QUICK_CASES}[name]
    warm_model, warm_inputs = WARM_UP[family]()
    began = time.perf_counter()
    trainonce.analyze(warm_model, warm_inputs)
    first_call = time.perf_counter() - began
    del warm_model, warm_inputs

    model, inputs = build()
    model_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()] if not t.is_meta)
    rss_before = reset_peak_rss()
    with stage_timers(STAGES) as stages:
        began = time.perf_counter()
        space = trainonce.analyze(model, inputs)
        seconds = time.perf_counter() - began
    peak = peak_rss_bytes()
    split = {"export": stages["export"], "ir": stages["capture"] - stages["export"], "propagate": stages["propagate"],
             "groups": stages["groups"], "probe": stages["probe"]}
    split["other"] = seconds - sum(split.values())
    return {
        "case": name,
        "description": description,
        "family": family,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_gb": model_bytes / 1e9,
        "graph_nodes": len(space.graph.nodes),
        "graph_values": len(space.graph.values),
        "node_groups": len(space.node_groups),
        "prunable_node_groups": len(space.prunable_groups),
        "num_prunable": space.num_prunable,
        "analyze_s": seconds,
        "first_call_overhead_s": first_call,
        "stages_s": split,
        "rss_before_gb": rss_before / 1e9,
        "peak_growth_gb": (peak - rss_before) / 1e9,
        "process_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "notes": space.notes,
    }


def fits(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Log-log slopes of time and memory against graph nodes, per family and over everything."""
    families: dict[str, list[dict[str, Any]]] = {"all": rows}
    for row in rows:
        families.setdefault(row["family"], []).append(row)
    out = {}
    for family, members in families.items():
        nodes = [r["graph_nodes"] for r in members]
        if len(set(nodes)) < 2:
            continue
        times = [r["analyze_s"] for r in members]
        out[family] = {
            "cases": len(members),
            "time_slope": loglog_slope(nodes, times),
            "graph_time_slope": loglog_slope(nodes, [r["stages_s"]["export"] + r["stages_s"]["ir"] for r in members]),
            "trainonce_time_slope": loglog_slope(
                nodes, [r["analyze_s"] - r["stages_s"]["export"] for r in members]),
            "memory_slope": loglog_slope(nodes, [max(r["peak_growth_gb"], 1e-3) for r in members]),
            "ms_per_node": 1000 * sum(times) / sum(nodes),
        }
    return out


def summary(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Target checks for ``trainonce bench --summary``: the 7B time and the per-family slopes."""
    rows = []
    verdict = payload["verdict"]
    if verdict:
        rows.append({"case": "llama_7b_meta", "measure": "analyze time", "value": f"{verdict['seconds']:.1f} s",
                     "target": f"<= {TARGET_7B_SECONDS:.0f} s", "met": verdict["met"]})
    for family, fit in payload["fits"].items():
        if family == "all":  # mixes real-weight and meta probes: not a scaling measure
            continue
        rows.append({"case": f"{family} ({fit['cases']} sizes)", "measure": "time / memory log-log slope vs nodes",
                     "value": f"{fit['time_slope']:.2f} / {fit['memory_slope']:.2f}", "target": "~1 (linear)",
                     "met": fit["time_slope"] <= 1.15 and fit["memory_slope"] <= 1.15})
    return rows


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    rows = []
    for r in payload["results"]:
        s = r["stages_s"]
        rows.append([r["case"], f"{r['graph_nodes']:,}", count(r["parameters"]), f"{r['num_prunable']:,}",
                     f"{r['analyze_s']:.2f}", f"{1000 * r['analyze_s'] / r['graph_nodes']:.2f}",
                     f"{s['export']:.2f}", f"{s['ir']:.2f}", f"{s['propagate']:.2f}", f"{s['groups']:.2f}",
                     f"{s['probe']:.2f}", f"{r['first_call_overhead_s']:.2f}", f"{r['model_gb']:.2f}",
                     f"{r['peak_growth_gb']:.3f}", f"{r['process_peak_rss_gb']:.2f}"])
    table = markdown_table(["case", "graph nodes", "params", "N groups", "analyze (s)", "ms / node", "export",
                            "ir", "propagate", "groups", "probe", "first call (s)", "weights (GB)",
                            "analyze peak +RSS (GB)", "process peak RSS (GB)"], rows)
    fit_rows = [[family, str(f["cases"]), f"{f['time_slope']:.2f}", f"{f['graph_time_slope']:.2f}",
                 f"{f['trainonce_time_slope']:.2f}", f"{f['memory_slope']:.2f}", f"{f['ms_per_node']:.2f}"]
                for family, f in payload["fits"].items()]
    fit_table = markdown_table(["family", "cases", "time slope", "export + ir slope", "trainonce slope (analyze - export)",
                                "memory slope", "ms / node"], fit_rows)
    verdict = payload["verdict"]
    lines = [
        "# Analysis: time and peak memory against graph size",
        "",
        f"{env['cpu']}, {env['cpu_count']} cpus ({payload['config']['threads']} torch threads), torch {env['torch']}, "
        f"Python {env['python']}, commit {env['git_commit']}, {env['date']}. One fresh process per model; "
        "`analyze (s)` is after a tiny same-family model was analysed first (`first call`: torch.export's one-off "
        "warm-up, paid once per session). Stages in seconds. `analyze peak +RSS`: exact peak RSS during analyze "
        "above the RSS before it.",
        "",
        table,
        "",
        "Log-log slope against graph nodes (1 = linear; `trainonce` = everything but torch.export itself). "
        "Within a family the per-node cost is alike, so its slope is the scaling measure; `all` mixes families "
        "(BERT-base's probe runs on real weights, the Llama configurations' on meta):",
        "",
        fit_table,
        "",
    ]
    if verdict:
        lines.append(f"Target: Llama-7B config analysed in <= {TARGET_7B_SECONDS:.0f} s: {verdict['seconds']:.1f} s, "
                     f"{'met' if verdict['met'] else 'NOT met'} (first call included: "
                     f"{verdict['seconds_with_first_call']:.1f} s).")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny ResNet, BERT and Llama (smoke run)")
    p.add_argument("--cases", help="comma-separated subset of the cases")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in each subprocess (1: the 2-core machine is shared)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for analysis_speed.json / .md")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.threads)))
        return None
    cases = QUICK_CASES if args.quick else CASES
    names = args.cases.split(",") if args.cases else list(cases)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--case", name, "--threads", str(args.threads)],
                              capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"case {name} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:18s} {row['graph_nodes']:6,d} nodes  {row['analyze_s']:6.2f} s  +{row['peak_growth_gb']:.3f} GB",
              flush=True)
    seven_b = next((r for r in rows if r["case"] == "llama_7b_meta"), None)
    verdict = {} if seven_b is None else {"seconds": seven_b["analyze_s"], "met": seven_b["analyze_s"] <= TARGET_7B_SECONDS,
                                          "seconds_with_first_call": seven_b["analyze_s"] + seven_b["first_call_overhead_s"]}
    payload = {"benchmark": "analysis_speed", "environment": environment(),
               "config": {"quick": args.quick, "threads": args.threads, "cases": names},
               "targets": {"scaling": "time and memory linear in graph nodes (log-log slope ~ 1)",
                           "llama_7b_meta": f"analyze <= {TARGET_7B_SECONDS:.0f} s"},
               "results": rows, "fits": fits(rows), "verdict": verdict}
    payload["checks"] = summary(payload)
    write_results(args.out, "analysis_speed", payload, markdown(payload))
    return payload


if __name__ == "__main__":
    main()
