"""MAC counts: exact values on hand-computed single ops, and the published reference totals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainonce.graph.capture import capture
from trainonce.metrics import MacReport, count_macs
from zoo import build


def macs_of(model: nn.Module, *inputs: torch.Tensor, **kwargs: bool) -> MacReport:
    graph, _ = capture(model, inputs)
    return count_macs(graph, **kwargs)


class Lambda(nn.Module):
    """A parameter-free module around a function: functional ops are counted like layers."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


# --------------------------------------------------------------------------- convolutions
def test_grouped_conv() -> None:
    # out 2x12x5x5 = 600 elements, each reads (8/4) channels x 3x3 taps; the bias is free
    conv = nn.Conv2d(8, 12, 3, padding=1, groups=4)
    report = macs_of(conv, torch.randn(2, 8, 5, 5))
    assert report.total == 600 * 2 * 9
    assert report.by_op == {"conv": 600 * 2 * 9}


def test_strided_depthwise_conv() -> None:
    # stride 2 on 7x7 -> 4x4; depthwise: 1 input channel per output channel
    conv = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6, bias=False)
    assert macs_of(conv, torch.randn(1, 6, 7, 7)).total == 6 * 4 * 4 * 1 * 9


def test_conv1d_and_conv3d() -> None:
    assert macs_of(nn.Conv1d(4, 6, 5), torch.randn(3, 4, 20)).total == 3 * 6 * 16 * 4 * 5
    assert macs_of(nn.Conv3d(2, 3, (1, 3, 3)), torch.randn(1, 2, 4, 6, 6)).total == 3 * 4 * 4 * 4 * 2 * 9


def test_conv_transpose2d_grouped() -> None:
    # transposed: every input element is scattered into (C_out/G) x k x k outputs
    deconv = nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2)
    report = macs_of(deconv, torch.randn(1, 6, 4, 4))
    assert report.total == (6 * 4 * 4) * (4 // 2) * 9


def test_conv_transpose1d() -> None:
    deconv = nn.ConvTranspose1d(8, 6, 4, stride=2, groups=2, bias=False)
    assert macs_of(deconv, torch.randn(2, 8, 10)).total == (2 * 8 * 10) * 3 * 4


# --------------------------------------------------------------------------- linear / matmul
def test_linear_on_3d_input() -> None:
    assert macs_of(nn.Linear(5, 7), torch.randn(2, 3, 5)).total == 2 * 3 * 7 * 5


def test_matmul_broadcast_and_bmm() -> None:
    assert macs_of(Lambda(torch.matmul), torch.randn(2, 3, 4, 5), torch.randn(5, 6)).total == 2 * 3 * 4 * 6 * 5
    assert macs_of(Lambda(torch.bmm), torch.randn(3, 4, 5), torch.randn(3, 5, 2)).total == 3 * 4 * 2 * 5
    assert macs_of(Lambda(torch.mm), torch.randn(4, 5), torch.randn(5, 2)).total == 4 * 2 * 5
    assert macs_of(Lambda(torch.matmul), torch.randn(5), torch.randn(5)).total == 5  # dot product


def test_addmm_baddbmm_and_inplace() -> None:
    addmm = Lambda(lambda b, x, w: torch.addmm(b, x, w))
    assert macs_of(addmm, torch.randn(6), torch.randn(4, 5), torch.randn(5, 6)).total == 4 * 6 * 5

    def inplace(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = c.clone()
        out.baddbmm_(a, b)  # packet "baddbmm_": the in-place suffix is stripped
        return out

    report = macs_of(Lambda(inplace), torch.randn(3, 4, 2), torch.randn(3, 4, 5), torch.randn(3, 5, 2))
    assert report.total == 3 * 4 * 2 * 5


@pytest.mark.parametrize(
    ("equation", "shapes", "expected"),
    [
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
        ("bchw,dc->bdhw", [(1, 16, 4, 4), (24, 16)], 16 * 4 * 4 * 24),
        ("...ij,jk->...ik", [(2, 3, 4, 5), (5, 6)], 2 * 3 * 4 * 5 * 6),
        ("i,j->ij", [(3,), (4,)], 12),  # outer product: nothing contracted
        ("b i d, b j d -> b i j", [(2, 3, 8), (2, 5, 8)], 2 * 3 * 5 * 8),
        ("ii->i", [(4, 4)], 0),  # one operand: data movement only
    ],
)
def test_einsum(equation: str, shapes: list[tuple[int, ...]], expected: int) -> None:
    model = Lambda(lambda *ts: torch.einsum(equation, *ts))
    assert macs_of(model, *(torch.randn(s) for s in shapes)).total == expected


# --------------------------------------------------------------------------- attention
def test_sdpa_grouped_query_attention() -> None:
    # 8 query heads share 2 key/value heads; cost is per query head: B*H*L*S*(E + Ev)
    b, h, h_kv, length, source, e, e_v = 2, 8, 2, 5, 7, 16, 12
    sdpa = Lambda(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    q, k, v = torch.randn(b, h, length, e), torch.randn(b, h_kv, source, e), torch.randn(b, h_kv, source, e_v)
    report = macs_of(sdpa, q, k, v)
    assert report.total == b * h * length * source * e + b * h * length * source * e_v
    assert report.by_op == {"attention": report.total}


# --------------------------------------------------------------------------- norms and the rest
def test_norms_reported_but_not_in_default_total() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.GroupNorm(2, 4))
    x = torch.randn(2, 3, 5, 5)
    conv, norm = 2 * 4 * 25 * 3, 2 * (2 * 4 * 25)
    default = macs_of(model, x)
    assert default.total == conv
    assert default.by_op == {"conv": conv, "norm": norm}
    assert default.excluded == ("norm",)
    assert macs_of(model, x, include_norms=True).total == conv + norm


def test_layer_norm_counts_output_elements() -> None:
    report = macs_of(nn.LayerNorm(6), torch.randn(2, 3, 6), include_norms=True)
    assert report.total == report.by_op["norm"] == 36


def test_elementwise_ops_are_free() -> None:
    model = Lambda(lambda x, y: torch.relu(x + y).sigmoid() * 2 + x.softmax(-1))
    report = macs_of(model, torch.randn(4, 8), torch.randn(4, 8))
    assert report.total == 0
    assert report.by_op == {}


def test_by_module_sums_to_total_and_names_modules() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.head = nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn(self.conv(x)).mean((2, 3))
            return self.head(x) @ torch.ones(5, 2)  # a root-level matmul

    report = macs_of(Net(), torch.randn(1, 3, 4, 4))
    assert report.by_module == {"conv": 8 * 16 * 27, "head": 5 * 8, "": 2 * 5}
    assert sum(report.by_module.values()) == report.total


def test_shared_module_counted_per_call() -> None:
    linear = nn.Linear(4, 4, bias=False)
    model = Lambda(lambda x: linear(linear(x)))
    model.linear = linear
    assert macs_of(model, torch.randn(3, 4)).total == 2 * 3 * 4 * 4


@pytest.mark.filterwarnings("ignore:The tensor attributes")  # nn.LSTM flat weights, a torch.export notice
def test_lstm() -> None:
    lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True)
    model = Lambda(lambda x: lstm(x)[0])
    model.lstm = lstm
    steps = 2 * 7  # batch x time
    weights = 4 * 5 * (6 + 5) + 4 * 5 * (5 + 5)
    assert macs_of(model, torch.randn(2, 7, 6)).by_op["rnn"] == steps * weights


# --------------------------------------------------------------------------- references
@pytest.mark.parametrize(
    ("name", "millions", "exact"),
    [
        ("resnet18_cifar", 555.42, 555_422_720),
        ("vgg16_bn", 313.73, 313_725_952),
        pytest.param("resnet50_cifar", 1297.83, 1_297_829_888, marks=pytest.mark.slow),
    ],
)
def test_reference_totals(name: str, millions: float, exact: int) -> None:
    model, inputs = build(name)
    report = count_macs(capture(model, inputs)[0])
    assert round(report.total / 1e6, 2) == millions
    assert report.total == exact
    assert report.total == report.by_op["conv"] + report.by_op["linear"]
