"""Interleaved latency of several models, and the deployment transforms applied to both sides of a comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.metrics import compare, fold_batchnorm, measure_latencies, to_channels_last
from zoo.resnet import BasicBlock, ResNet


def convnet(width: int) -> nn.Module:
    torch.manual_seed(width)
    model = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, width, 3),
                          nn.BatchNorm2d(width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10), nn.BatchNorm1d(10))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(module.weight, 0.5, 1.5)
    return model.eval()


def test_rounds_rotate_through_the_models() -> None:
    models = [convnet(4), convnet(8), convnet(12)]
    calls: list[int] = []
    for index, model in enumerate(models):
        model.register_forward_hook(lambda m, i, o, index=index: calls.append(index))
    models[1].train()
    reports = measure_latencies(models, torch.randn(2, 3, 8, 8), warmup=1, repeats=3, threads=1)
    assert [len(r.samples) for r in reports] == [3, 3, 3]
    assert all(r.threads == 1 and r.median > 0 and len(r.cpu_samples) == 3 and r.cpu_median > 0 for r in reports)
    warmup, rounds = [0, 1, 2], [[0, 1, 2], [1, 2, 0], [2, 0, 1]]  # one warm-up pass each, then a rotation per round
    assert calls == warmup + [i for order in rounds for i in order]
    assert models[1].training and not models[0].training  # modes restored
    assert measure_latencies([], torch.randn(1)) == []
    with pytest.raises(ValueError):
        measure_latencies(models, torch.randn(2, 3, 8, 8), repeats=0)


def test_fold_batchnorm_is_exact_and_removes_the_norms() -> None:
    model = convnet(8).train()
    folded = fold_batchnorm(model)  # folds the running statistics: the copy is in eval mode
    assert model.training and not folded.training
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), atol=1e-5, rtol=1e-5)

    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x  # data-dependent control flow: not traceable

    with pytest.raises(TrainonceError, match="cannot trace"):
        fold_batchnorm(Branchy())


def test_channels_last_copies_model_and_inputs() -> None:
    model = convnet(8)
    x = torch.randn(2, 3, 8, 8)
    copied, inputs = to_channels_last(model, (x, torch.ones(3)))
    assert copied[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert inputs.args[0].is_contiguous(memory_format=torch.channels_last) and inputs.args[1].shape == (3,)
    with torch.no_grad():
        torch.testing.assert_close(copied(inputs.args[0]), model(x))


def test_compare_with_deployment_transforms() -> None:
    torch.manual_seed(0)
    full = ResNet(BasicBlock, (1, 1, 1, 1), (16, 32, 64, 128)).eval()
    half = ResNet(BasicBlock, (1, 1, 1, 1), (8, 16, 32, 64)).eval()
    plain = compare(full, half, torch.randn(1, 3, 16, 16), warmup=1, repeats=2, threads=1)
    deployed = compare(full, half, torch.randn(1, 3, 16, 16), warmup=1, repeats=2, threads=1, fold_bn=True, channels_last=True)
    assert deployed.macs == plain.macs and deployed.params == plain.params  # counted on the models as given
    assert deployed.latency is not None and deployed.latency.full > 0 and deployed.latency.compact > 0
