"""Smoke tests: the ``--quick`` modes of the benchmarks (quality, overhead, erasing, analysis_speed,
construction_speed) run end to end as scripts and write result files with the expected contents
(each takes 10-25 s on 2 cores)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trainonce

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data" / "fashion_mnist.npz"
HAS_HESSO = hasattr(trainonce, "HESSO")


def run_script(name: str, *args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--quick", "--threads", "1", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.skipif(not DATA.is_file(), reason=f"Fashion-MNIST not found at {DATA}")
def test_quality_quick(tmp_path: Path) -> None:
    configs = "dense,hesso-0.5,oneshot-0.5" if HAS_HESSO else "dense"
    run_script("quality.py", "--out", str(tmp_path), "--configs", configs)
    payload = json.loads((tmp_path / "quality.json").read_text())
    assert {"environment", "config", "runs", "summary", "verdicts", "wall_seconds"} <= set(payload)
    assert payload["environment"]["torch"] and payload["config"]["quick"] is True
    runs = {run["method"]: run for run in payload["runs"]}
    assert set(runs) == set(configs.split(","))
    for run in runs.values():
        assert 0.0 <= run["test_acc"] <= 100.0
        # the compact model reproduces the zeroed full model: at most one of the 500 test images may flip
        assert abs(run["compact_test_acc"] - run["test_acc"]) <= 100.0 / 500
        assert run["latency_ms"] > 0 and run["params"] <= run["params_full"] and run["macs"] <= run["macs_full"]
    assert runs["dense"]["test_acc"] > 20.0  # 10 classes: one epoch on 1,280 images beats chance
    assert runs["dense"]["mac_reduction"] == 0.0
    assert set(payload["summary"]) == set(configs.split(","))
    markdown = (tmp_path / "quality.md").read_text()
    assert "| method |" in markdown and "dense" in markdown
    if HAS_HESSO:
        for name in ("hesso-0.5", "oneshot-0.5"):
            run = runs[name]
            assert run["target_groups"] == math.floor(run["num_groups"] * 0.5)
            assert run["zero_groups"] == run["target_groups"]  # the requested sparsity, exactly
            assert run["mac_reduction"] > 0.0 and run["params"] < run["params_full"]
        assert "hesso-0.5" in payload["verdicts"]["targets"]


@pytest.mark.skipif(not HAS_HESSO, reason="trainonce.HESSO is not available yet")
def test_overhead_quick(tmp_path: Path) -> None:
    run_script("overhead.py", "--out", str(tmp_path))
    payload = json.loads((tmp_path / "overhead.json").read_text())
    assert {"environment", "config", "results", "target_met", "wall_seconds"} <= set(payload)
    config = payload["config"]
    assert {(r["optimizer"], r["model"], r["base"]) for r in payload["results"]} == {
        (o, m, b) for o in ("hesso", "dhspg", "cric") for m in ("resnet_tiny", "bert_tiny") for b in ("sgd_momentum", "adamw")}
    expected_steps = {
        "hesso": {"before": config["before"], "selection": config["periods"],
                  "decay": config["periods"] * (config["period_length"] - 1), "hold": config["hold"]},
        "dhspg": {"before": config["before"], "selection": 1, "penalty": config["penalty_steps"], "hold": config["hold"]},
    }
    for result in payload["results"]:
        k = math.floor(result["num_groups"] * config["sparsity"])
        steps = {phase: stats["steps"] for phase, stats in result["phases"].items()}
        if result["optimizer"] == "cric":
            assert set(steps) == {"before", "selection", "probe", "cycle", "decay", "hold"}
            assert steps["decay"] == config["cric_hybrid"] and steps["hold"] >= config["hold"]
            assert result["final_zero_groups"] == k
            assert result["max_state_copies"] > 1.0  # the anchor snapshot and the scratch buffer
        else:
            assert steps == expected_steps[result["optimizer"]]
            assert result["final_zero_groups"] >= k  # DHSPG: its whole penalised set, within the tolerance
            assert result["max_state_copies"] <= 1.0  # the scratch buffer, nothing else parameter-sized
        for stats in result["phases"].values():
            for key in ("base_ms", "wrapped_ms", "ratio", "paired_ratio_median", "state_ratio"):
                assert isinstance(stats[key], float) and stats[key] > 0.0 and math.isfinite(stats[key])
    markdown = (tmp_path / "overhead.md").read_text()
    assert "| optimizer | model |" in markdown and "| cric |" in markdown


@pytest.mark.skipif(not DATA.is_file(), reason=f"Fashion-MNIST not found at {DATA}")
def test_erasing_quick(tmp_path: Path) -> None:
    run_script("erasing.py", "--out", str(tmp_path), "--configs", "dense,hesso-erase-0.5")
    payload = json.loads((tmp_path / "erasing.json").read_text())
    runs = {run["method"]: run for run in payload["runs"]}
    assert set(runs) == {"dense", "hesso-erase-0.5"}
    erased = runs["hesso-erase-0.5"]
    assert erased["erased_segments"] and erased["mac_reduction"] >= 0.5  # the MAC target is met on schedule
    assert erased["operators"] < erased["operators_full"]
    assert abs(erased["compact_test_acc"] - erased["test_acc"]) <= 100.0 / 500  # exact network: at most a tie flips
    assert "| method |" in (tmp_path / "erasing.md").read_text()


def test_analysis_speed_quick(tmp_path: Path) -> None:
    run_script("analysis_speed.py", "--out", str(tmp_path))
    payload = json.loads((tmp_path / "analysis_speed.json").read_text())
    assert {"environment", "config", "targets", "results", "fits"} <= set(payload)
    rows = {row["case"]: row for row in payload["results"]}
    assert set(rows) == {"resnet_tiny", "bert_tiny", "llama_tiny_meta"}
    for row in rows.values():
        assert row["graph_nodes"] > 50 and row["num_prunable"] > 0
        stages = row["stages_s"]
        assert min(stages[s] for s in ("export", "ir", "propagate", "groups", "probe")) >= 0.0
        named = sum(stages[s] for s in ("export", "ir", "propagate", "groups", "probe"))
        assert 0.0 < stages["export"] <= named <= row["analyze_s"] + 1e-6  # the stages happen inside the timed call
        assert row["peak_growth_gb"] >= 0.0 and row["process_peak_rss_gb"] > 0.0
    assert rows["llama_tiny_meta"]["model_gb"] == 0.0  # on meta: no weights allocated
    assert math.isfinite(payload["fits"]["all"]["time_slope"])
    assert "| case |" in (tmp_path / "analysis_speed.md").read_text()


def test_construction_speed_quick(tmp_path: Path) -> None:
    run_script("construction_speed.py", "--out", str(tmp_path))
    payload = json.loads((tmp_path / "construction_speed.json").read_text())
    assert {"environment", "config", "targets", "results"} <= set(payload)
    rows = {row["case"]: row for row in payload["results"]}
    assert set(rows) == {"bert_tiny", "llama_tiny"}
    for row in rows.values():
        assert 0 < row["compact_parameters"] < row["parameters"]  # zero_random(0.5) removed something
        assert row["deepcopy_s"] > 0.0 and row["deepcopy_peak_gb"] >= 0.0
        for key in ("construct_no_verify", "construct"):
            result = row[key]
            assert result["seconds"] > 0.0 and math.isfinite(result["time_ratio"]) and result["peak_ratio"] >= 1.0
            assert result["stages_s"]["build"] > 0.0 and result["stages_s"]["resolve"] > 0.0
        assert row["construct_no_verify"]["stages_s"]["verify"] == 0.0 < row["construct"]["stages_s"]["verify"]
    assert "| case |" in (tmp_path / "construction_speed.md").read_text()
