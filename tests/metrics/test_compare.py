"""compare(): a model against a half-width version of itself, and against its own copy."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from trainonce.metrics import Comparison, compare, count_parameters
from zoo.resnet import BasicBlock, ResNet


def resnet(widths: tuple[int, int, int, int]) -> ResNet:
    torch.manual_seed(0)
    return ResNet(BasicBlock, (1, 1, 1, 1), widths, imagenet_stem=True).eval()


@pytest.fixture(scope="module")
def half_width() -> Comparison:
    full, half = resnet((16, 32, 64, 128)), resnet((8, 16, 32, 64))
    return compare(full, half, torch.randn(2, 3, 32, 32), warmup=1, repeats=3, threads=1)


def test_half_width_is_smaller(half_width: Comparison) -> None:
    # halving every width quarters every conv but the stem (3 fixed input channels), which halves
    assert half_width.params.ratio < 0.3
    assert 0.25 < half_width.macs.ratio < 0.4
    assert half_width.macs.full == half_width.mac_reports[0].total
    assert half_width.params.full == count_parameters(resnet((16, 32, 64, 128)))
    assert half_width.latency is not None and half_width.latency_reports is not None
    assert half_width.latency.full == half_width.latency_reports[0].median > 0
    assert half_width.speedup == pytest.approx(half_width.latency.full / half_width.latency.compact)
    assert half_width.max_abs_diff > 0  # different networks, different outputs


def test_table(half_width: Comparison) -> None:
    table = half_width.table()
    lines = table.splitlines()
    assert lines[0].split() == ["before", "after", "ratio"]
    assert [line.split()[0] for line in lines[1:4]] == ["params", "MACs", "latency"]
    assert "speed-up" in lines[3]
    assert "max abs output difference" in lines[-1]
    # aligned: the right edges of the "before" and "after" columns are the same on every row
    for column in ("before", "after"):
        end = lines[0].index(column) + len(column)
        for line in lines[:4]:
            assert line[end - 1] != " " and line[end] == " ", (column, line)
    print(table)


def test_identical_copy_without_latency() -> None:
    full = resnet((8, 8, 16, 16))
    full.train()
    result = compare(full, copy.deepcopy(full), torch.randn(1, 3, 32, 32), latency=False)
    assert result.params.ratio == 1.0 and result.macs.ratio == 1.0
    assert result.max_abs_diff == 0.0
    assert result.latency is None and result.speedup is None
    assert full.training  # restored
    assert "latency" not in result.table()
    assert not math.isnan(result.output_scale)
