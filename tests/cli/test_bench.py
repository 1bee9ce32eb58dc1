"""``trainonce bench``: a table row per (model, sparsity) with ratios that mean what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainonce.cli.main import main


def test_bench_writes_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.md"
    argv = ["bench", "trainonce.cli.demo:DemoNet", "--input-shape", "1,1,8,8", "--sparsity", "0.3", "0.6",
            "--repeats", "3", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    table = out.read_text()
    assert table in capsys.readouterr().out
    assert len(table.splitlines()) == 2 + 2  # header, rule, one row per sparsity
    (result,) = json.loads(out.with_suffix(".json").read_text())
    assert result["num_prunable"] > 0 and result["analyze_s"] > 0 and result["step_ratio"] > 0
    first, second = result["rows"]
    assert first["sparsity"] == 0.3 and second["sparsity"] == 0.6
    assert 0 < second["macs_ratio"] < first["macs_ratio"] < 1  # more zeroed, fewer MACs left
    assert 0 < second["params_ratio"] < first["params_ratio"] < 1
    assert all(row["max_abs_diff"] <= 1e-5 and row["latency_ratio"] > 0 for row in result["rows"])


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "trainonce.cli.demo:DemoNet", "--sparsity", "1.5"], "fractions in (0, 1)"),
    (["bench", "trainonce.cli.demo:DemoNet"], "pass --input-shape"),
    (["bench", "trainonce.cli.demo:DemoNet", "--repeats", "0"], "--repeats must be at least 1"),
])
def test_bench_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_summary_gathers_every_target_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"cpu": "Test CPU", "torch": "2.13.0", "date": "today", "git_commit": "abc"}
    checks = [{"case": "m1", "measure": "time", "value": "1.2x", "target": "<= 2x", "met": True},
              {"case": "m2", "measure": "time", "value": "3.0x", "target": "<= 2x", "met": False}]
    (tmp_path / "speed.json").write_text(json.dumps({"environment": env, "config": {"threads": 1}, "checks": checks}))
    (tmp_path / "other.json").write_text(json.dumps({"summary": "results without target checks are skipped"}))
    assert main(["bench", "--summary", str(tmp_path)]) == 0
    table = (tmp_path / "summary.md").read_text()
    assert "| speed | m1 | time | 1.2x | <= 2x | yes |" in table
    assert "| speed | m2 | time | 3.0x | <= 2x | **no** |" in table
    assert "other" not in table and "Test CPU, 1 torch thread(s)" in table
    assert table in capsys.readouterr().out


def test_summary_of_an_empty_directory_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--summary", str(tmp_path)]) == 2
    assert "run the scripts in benchmarks/" in capsys.readouterr().err
    assert main(["bench"]) == 2
    assert "or pass --summary" in capsys.readouterr().err
