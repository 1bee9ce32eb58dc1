"""The command line: the README's main job, one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainonce.cli.main import main


def test_analyze_with_zeroing_prints_before_after(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "zoo.resnet:resnet18_imagenet_small", "--zero", "0.5", "--rows", "5"]) == 0
    out = capsys.readouterr().out
    assert "prunable groups N = 720" in out
    assert "params" in out and "MACs" in out and "latency" in out
    assert "max abs output difference" in out


def test_input_shape_for_factories_that_return_only_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "torch.nn:Identity"]) == 2
    assert "pass --input-shape" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["analyze", "no_colon"], "expected MODULE:FACTORY"),
        (["analyze", "not_a_module_xyz:f"], "cannot import module"),
        (["analyze", "zoo.resnet:missing"], "has no callable"),
        (["analyze", "zoo.resnet:resnet18_cifar", "--input-shape", "1,abc"], "comma separated integers"),
    ],
)
def test_bad_arguments_are_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_analyze_in_erase_mode_erases_segments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "zoo.supernet:deep_plain_residual", "--mode", "erase", "--zero", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "erasable (GeZIGs) N = 12" in out
    assert "zeroed 6 of 12 groups" in out and "max abs output difference: 0" in out


def test_analyze_renders_the_graph_explorer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "graph.html"
    assert main(["analyze", "trainonce.cli.demo:DemoNet", "--input-shape", "1,1,8,8", "--render", str(page)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    html = page.read_text()
    assert 'data-groups' in html and "stages.0.conv1" in html and "https://" not in html
