"""Analysis time and peak memory of ``trainonce.analyze`` on large graphs.

BERT-base is built with real (random) weights; the Llama configurations are built on the
``meta`` device, so a 7B-parameter model is analysed without allocating its weights. Each model
runs in a fresh subprocess so that peak RSS is its own. Results: benchmarks/results/analysis_speed.json.

    python benchmarks/analysis_speed.py            # BERT-base, Llama 1B-like, Llama-7B (32 layers)
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "analysis_speed.json"
CASES = {
    "bert_base": "BERT-base (12 layers, hidden 768), real weights",
    "llama_1b_meta": "Llama 16 layers, hidden 2048, GQA 32/8, on meta",
    "llama_7b_meta": "Llama-7B config (32 layers, hidden 4096, 32 heads, 11008 MLP), on meta",
}


def build(case: str):  # type: ignore[no-untyped-def]
    import torch
    from transformers import BertModel, LlamaForCausalLM

    from zoo.hf import bert_base_config, llama_config

    ids = torch.randint(0, 1000, (1, 16))
    if case == "bert_base":
        return BertModel(bert_base_config()).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if case == "llama_1b_meta":
        config = llama_config(16, 2048, 32, 8, 8192, 32000)
    else:
        config = llama_config(32, 4096, 32, 32, 11008, 32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
    return model, {"input_ids": ids.to("meta")}


def run_case(case: str) -> dict[str, object]:
    import torch

    import trainonce

    torch.set_num_threads(2)
    model, inputs = build(case)
    start = time.perf_counter()
    space = trainonce.analyze(model, inputs)
    seconds = time.perf_counter() - start
    return {
        "case": case,
        "description": CASES[case],
        "parameters": sum(p.numel() for p in model.parameters()),
        "graph_ops": len(space.graph.nodes),
        "node_groups": len(space.node_groups),
        "prunable_node_groups": len(space.prunable_groups),
        "num_prunable": space.num_prunable,
        "analyze_seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "notes": space.notes,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(run_case(sys.argv[2])))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True, env=env, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{case:16s} {row['graph_ops']:6d} ops  {row['analyze_seconds']:7.2f} s  {row['peak_rss_gb']:5.2f} GB RSS  "
              f"N={row['num_prunable']:,} ({row['prunable_node_groups']} prunable node groups)", flush=True)
    RESULTS.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
                                   "targets": {"llama_7b_meta": "analyze < 60 s and < 4 GB RSS on 2 cores"},
                                   "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
