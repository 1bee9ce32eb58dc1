"""``trainonce prune CONFIG``: config checking, a full run, and resume equality after interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import trainonce
from trainonce.cli.config import EXAMPLE, parse_config
from trainonce.cli.main import main

CONFIG = """\
model:
  factory: trainonce.cli.demo:DemoNet
  kwargs: {in_channels: 1, num_classes: 10, widths: [8, 16, 32]}
data:
  dataset: digits
  batch_size: 64
train:
  epochs: 2
  seed: 3
  checkpoint_every: 5
optimizer:
  name: SGD
  lr: 0.05
  kwargs: {momentum: 0.9, weight_decay: 1e-4}
pruning:
  target_sparsity: 0.5
  periods: 4
output: OUT
"""


def write_config(directory: Path, text: str = CONFIG, name: str = "run.yaml") -> Path:
    path = directory / name
    path.write_text(text.replace("OUT", str(directory / "out")))
    return path


def compact_state(out: Path) -> dict[str, torch.Tensor]:
    return trainonce.load(out / "compact").state_dict()


def test_example_config_is_valid() -> None:
    config = parse_config(yaml.safe_load(EXAMPLE))
    assert config.pruning.method == "HESSO" and config.pruning.target == {"target_flops": 0.5}


def test_run_then_interrupted_runs_end_with_the_same_compact_model(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    assert main(["prune", str(write_config(whole)), "--quiet"]) == 0
    report = json.loads((whole / "out" / "report.json").read_text())
    assert report["removed"] == report["num_prunable"] // 2  # HESSO's exact target
    assert report["params"]["compact"] < report["params"]["full"]
    assert report["max_abs_diff"] <= 1e-5 * 10
    assert report["accuracy"]["full"] == pytest.approx(report["accuracy"]["compact"], abs=1e-9)

    config = write_config(parts)
    assert main(["prune", str(config), "--quiet", "--stop-after", "7"]) == 0  # mid-epoch, before pruning ends
    assert not (parts / "out" / "compact").exists()
    assert main(["prune", str(config), "--quiet", "--stop-after", "30"]) == 0  # next epoch, inside the window
    assert main(["prune", str(config), "--quiet"]) == 0
    expected, found = compact_state(whole / "out"), compact_state(parts / "out")
    assert expected.keys() == found.keys()
    for name in expected:
        assert torch.equal(expected[name], found[name]), name


def test_toml_config_and_a_checkpoint_of_another_config_is_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    toml = """\
output = "OUT"
[model]
factory = "trainonce.cli.demo:DemoNet"
kwargs = {in_channels = 1, num_classes = 10, widths = [8, 16]}
[data]
dataset = "digits"
batch_size = 128
[train]
epochs = 2
[pruning]
target_flops = 0.4
periods = 2
"""
    config = write_config(tmp_path, toml, "run.toml")
    assert main(["prune", str(config), "--quiet", "--stop-after", "3"]) == 0
    config.write_text(config.read_text().replace("target_flops = 0.4", "target_flops = 0.3"))
    assert main(["prune", str(config), "--quiet"]) == 2
    assert "belongs to a different config" in capsys.readouterr().err
    assert main(["prune", str(config), "--quiet", "--restart"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["macs"]["compact"] <= 0.7 * report["macs"]["full"] + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("  batch_size: 64", "  batch_sise: 64"), "unknown key 'data.batch_sise'"),
        (("  epochs: 2", "  epochs: two"), "'train.epochs' must be an integer"),
        (("  target_sparsity: 0.5", "  target_sparsity: 0.5\n  target_flops: 0.5"), "exactly one of"),
        (("  target_sparsity: 0.5", "  target_sparsity: 1.5"), "fractions in (0, 1)"),
        (("  name: SGD", "  name: Nope"), "torch.optim optimizer class"),
        (("  periods: 4", "  periods: 4\n  method: H2SPG"), "set 'pruning.mode: erase'"),
        (("trainonce.cli.demo:DemoNet", "no_such_module_xyz:f"), "cannot import module"),
        (("  dataset: digits", "  dataset: imagenet"), "unknown dataset"),
        (("model:", "modle:"), "unknown section 'modle'"),
    ],
)
def test_bad_configs_are_one_clear_line(tmp_path: Path, change: tuple[str, str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, CONFIG.replace(*change))
    assert main(["prune", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_missing_config_and_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", str(tmp_path / "absent.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert main(["prune", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not valid YAML" in err and len(err.splitlines()) == 1


def test_erase_mode_run_saves_a_loadable_erased_network(tmp_path: Path) -> None:
    config = CONFIG.replace("trainonce.cli.demo:DemoNet", "zoo.supernet:super_residual_net").replace(
        "{in_channels: 1, num_classes: 10, widths: [8, 16, 32]}", "{in_channels: 1, width: 4, blocks_per_stage: 1}"
    ).replace("  periods: 4", "  periods: 4\n  mode: erase")
    assert main(["prune", str(write_config(tmp_path, config)), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["removed"] == report["num_prunable"] // 2 > 0  # HESSO in erase mode: exactly K segments
    assert report["macs"]["compact"] < report["macs"]["full"] and report["max_abs_diff"] <= 1e-4
    erased = trainonce.load(tmp_path / "out" / "compact")
    assert isinstance(erased, torch.fx.GraphModule)
    assert erased(torch.randn(3, 1, 8, 8)).shape == (3, 10)
