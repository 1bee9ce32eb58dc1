"""What every benchmark writes next to its numbers: the machine, the software, mean ± std, files.

A result file that cannot say where and with what it was measured is not worth keeping, so both
``quality.py`` and ``overhead.py`` put :func:`environment` at the top of their JSON and write a
JSON + markdown pair with :func:`write_results`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def cpu_name() -> str:
    """The CPU model as the kernel reports it (``platform.processor()`` is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Short commit of the checkout, with ``+dirty`` when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Machine and software the numbers were measured on."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "git_commit": git_commit(),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def count(n: float) -> str:
    """A count with an SI suffix, the way parameter and MAC columns are printed in papers."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n:.0f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def display_path(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (result files stay portable)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    return _status_kib("VmRSS") * 1024


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS and return it (Linux >= 4.0).

    Writing 5 to ``/proc/self/clear_refs`` resets the kernel's high-water mark, so
    :func:`peak_rss_bytes` afterwards is the exact peak of the code in between: no sampling
    thread that could miss a short-lived full-size copy. ``tracemalloc`` would not do: it does not
    see tensor storage.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return rss_bytes()


def peak_rss_bytes() -> int:
    """Peak RSS since the process started or since the last :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


@contextlib.contextmanager
def stage_timers(targets: dict[str, str]) -> Iterator[dict[str, float]]:
    """Time the functions named by ``targets`` (stage -> dotted path) while the block runs.

    Each function is replaced, under the name its caller looks it up by, with a wrapper that adds
    its wall time to the yielded ``{stage: seconds}``; so a stage split is of the real call, not
    of a re-implementation of the pipeline that could drift from it. A renamed function fails
    loudly (``mock.patch`` raises ``AttributeError``).
    """
    seconds = dict.fromkeys(targets, 0.0)
    with contextlib.ExitStack() as stack:
        for stage, target in targets.items():
            module_name, _, attribute = target.rpartition(".")
            original = getattr(importlib.import_module(module_name), attribute)

            def timed(*args: Any, _stage: str = stage, _original: Any = original, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    seconds[_stage] += time.perf_counter() - began

            stack.enter_context(mock.patch(target, timed))
        yield seconds


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x): 1 is linear scaling, 2 quadratic."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def write_results(out_dir: Path, name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write ``name.json`` and ``name.md`` into ``out_dir`` (created if needed), print the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


@contextlib.contextmanager
def bench_lock(path: Path | None) -> Iterator[None]:
    """Hold ``flock(path)`` while timing, if a path is given: the benchmarks and examples of this
    repository take the same lock around their timing blocks, so two of them never time on shared
    cores at once."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bert_with_inputs(tiny: bool) -> tuple[Any, dict[str, Any]]:
    """BERT-base (or a 2-layer, hidden-64 BERT) with random weights in eval mode, and 16 tokens."""
    from transformers import BertModel

    from zoo.hf import bert_base_config

    torch.manual_seed(0)
    config = bert_base_config(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128) if tiny \
        else bert_base_config()
    ids = torch.randint(0, 1000, (1, 16))
    return BertModel(config).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
