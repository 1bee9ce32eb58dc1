"""Smoke test: ``benchmarks/speedup.py --quick`` runs end to end as a script (~10 s on 2 cores) and writes
result files whose ratios are sane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_speedup_quick(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speedup.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    payload = json.loads((tmp_path / "speedup.json").read_text())
    assert {"environment", "config", "target", "results", "verdicts", "summary", "contention", "wall_seconds"} <= set(payload)
    assert payload["config"]["quick"] is True and payload["environment"]["torch"]
    (result,) = payload["results"]
    assert result["family"] == "cnn" and result["num_groups"] > 0
    rows = result["rows"]
    assert {(r["sparsity"], r["divisible"]) for r in rows} == {(0.5, 1), (0.5, 8)}
    for row in rows:
        for key in ("params_ratio", "macs_ratio", "latency_ratio", "paired_ratio", "cpu_latency_ratio"):
            assert 0.0 < row[key] < 1.5, (key, row)
        assert abs(row["ideal_fraction"] - row["macs_ratio"] / row["latency_ratio"]) < 1e-3
        assert abs(row["group_sparsity"] - 0.5) < 0.02 and row["full_ms"] > 0 and row["compact_ms"] > 0
    (verdict,) = payload["verdicts"]
    assert set(verdict["judged_fraction"]) == {"0.5/1", "0.5/8"} and verdict["clock"] == "cpu"
    markdown = (tmp_path / "speedup.md").read_text()
    assert "## Verdict per CNN" in markdown and "| resnet18_cifar |" in markdown
