"""``trainonce demo``: the model's search space, saving/rebuilding the compact model, the full run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import trainonce
from trainonce.cli import demo
from trainonce.cli.demo import DemoNet
from trainonce.cli.main import main
from trainonce.errors import TrainonceError
from trainonce.metrics import count_parameters
from trainonce.optim.schedule import make_schedule

CONFIG = {"in_channels": 1, "num_classes": 10, "widths": [32, 64, 128], "stem_stride": 1}


def test_demo_net_search_space_has_trunk_and_inner_groups() -> None:
    space = trainonce.analyze(DemoNet(**CONFIG), torch.randn(1, 1, 8, 8))
    # per stage: the trunk tied by the residual sum, and the block's inner channels
    assert space.num_prunable == 2 * (32 + 64 + 128)


def test_compact_model_is_rebuilt_from_its_saved_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DemoNet(**CONFIG)
    space = trainonce.analyze(model, torch.randn(1, 1, 8, 8))
    space.zero_random(0.5, seed=0)
    compact = space.construct()
    trainonce.save(compact, tmp_path, factory=DemoNet, factory_kwargs=CONFIG)
    spec = json.loads((tmp_path / "trainonce.json").read_text())
    assert spec["factory"] == "trainonce.cli.demo:DemoNet" and spec["factory_kwargs"] == CONFIG
    rebuilt = trainonce.load(tmp_path)  # no model needed: the factory and its arguments were recorded
    x = torch.randn(5, 1, 8, 8)
    compact.eval(), rebuilt.eval()
    assert torch.equal(rebuilt(x), compact(x))
    assert count_parameters(rebuilt) == count_parameters(compact) < count_parameters(model)


def test_schedule_warms_up_prunes_then_fine_tunes() -> None:
    schedule = make_schedule(690)
    assert (schedule.start_step, schedule.pruning_steps, schedule.periods, schedule.end_step) == (69, 200, 10, 269)
    assert make_schedule(20).periods == 6  # fewer periods than steps in the window
    with pytest.raises(TrainonceError, match="too few"):
        make_schedule(2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sparsity", "1.5"], "--sparsity must be between 0 and 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--lr", "-1"], "--lr must be positive"),
    ],
)
def test_bad_demo_arguments_are_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_matplotlib_skips_plots_with_a_notice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def no_matplotlib(*_: object, **__: object) -> Path:
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr("trainonce.viz.training.plot_training", no_matplotlib)
    history = demo.History("digits", 0.5, 1, 2, step=[1], loss=[1.0])
    assert demo.write_plots(history, tmp_path / "training.png") is None
    assert capsys.readouterr().out.strip().startswith("note: matplotlib is not installed")


def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "2", "--batch-size", "128", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "step/s" not in captured.err  # --quiet: no progress bars
    for name in ("training.png", "history.json", "compact/model.safetensors", "compact/trainonce.json"):
        assert (out / name).is_file(), name
    assert "params" in printed and "MACs" in printed and "latency" in printed
    accuracy_row = next(line for line in printed.splitlines() if line.startswith("accuracy"))
    assert accuracy_row.split()[1] == accuracy_row.split()[2]  # construction is exact: same accuracy
    history = json.loads((out / "history.json").read_text())
    n = 2 * (32 + 64 + 128)
    assert history["group_sparsity"][-1] == pytest.approx(math.floor(n * 0.5) / n)
    assert len(history["loss"]) == history["step"][-1] == 2 * math.ceil(1437 / 128)
    compact = trainonce.load(out / "compact")
    assert count_parameters(compact) < count_parameters(DemoNet(**CONFIG))
