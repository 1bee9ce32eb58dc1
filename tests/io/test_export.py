"""trainonce.export: pruned models to .pt2 (reloaded bitwise equal) and .onnx (onnxruntime agrees)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree

import trainonce
from tests.io.common import outputs, pruned
from trainonce.errors import TrainonceError
from trainonce.io import exporter

MODELS = ["resnet18_cifar", "hf_bert", "hf_llama_gqa"]
ONNX_RELATIVE_TOLERANCE = 1e-4


def _onnx_outputs(path: Path, inputs: Any) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    arrays = [t.numpy() for t in pytree.tree_leaves(inputs) if isinstance(t, torch.Tensor)]
    return session.run(None, {spec.name: array for spec, array in zip(session.get_inputs(), arrays, strict=True)})


def _relative_difference(expected: list[torch.Tensor], actual: list[np.ndarray]) -> float:
    assert len(expected) == len(actual)
    worst = 0.0
    for e, a in zip(expected, actual, strict=True):
        assert tuple(e.shape) == a.shape
        worst = max(worst, float(np.abs(e.numpy() - a).max()) / max(1.0, float(e.abs().max())))
    return worst


@pytest.mark.parametrize("name", MODELS)
def test_pt2_reloads_to_the_same_outputs(tmp_path: Path, name: str) -> None:
    compact, inputs = pruned(name)
    path = trainonce.export(compact, inputs, tmp_path / "model.pt2")
    assert path == tmp_path / "model.pt2" and path.exists()
    reloaded = torch.export.load(path).module()
    for expected, actual in zip(outputs(compact, inputs), outputs(reloaded, inputs), strict=True):
        assert torch.equal(expected, actual), f"max abs diff {(expected - actual).abs().max():.3g}"


@pytest.mark.parametrize("name", MODELS)
def test_onnx_runs_in_onnxruntime_with_the_same_outputs(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    compact, inputs = pruned(name)
    path = trainonce.export(compact, inputs, tmp_path / "model.onnx")
    assert capsys.readouterr().out == ""  # exporter progress is silenced by default
    difference = _relative_difference(outputs(compact, inputs), _onnx_outputs(path, inputs))
    print(f"{name}: onnxruntime max relative difference {difference:.3g}")
    assert difference <= ONNX_RELATIVE_TOLERANCE


def test_batch_dimension_is_dynamic(tmp_path: Path) -> None:
    compact, inputs = pruned("resnet18_cifar")
    batch = torch.randn(3, *inputs.shape[1:])
    program = torch.export.load(trainonce.export(compact, inputs, tmp_path / "model.pt2")).module()
    expected = outputs(compact, batch)[0]
    assert torch.allclose(outputs(program, batch)[0], expected, rtol=1e-5, atol=1e-6)
    onnx = _onnx_outputs(trainonce.export(compact, inputs, tmp_path / "model.onnx"), batch)
    assert _relative_difference([expected], onnx) <= ONNX_RELATIVE_TOLERANCE


def test_legacy_exporter_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compact, inputs = pruned("resnet18_cifar")
    monkeypatch.setattr(exporter, "_onnx_dynamo", lambda *args: "RuntimeError: unsupported op")
    with pytest.warns(UserWarning, match="failed \\(RuntimeError: unsupported op\\); trying the legacy"):
        path = trainonce.export(compact, inputs, tmp_path / "model.onnx")
    assert _relative_difference(outputs(compact, inputs), _onnx_outputs(path, inputs)) <= ONNX_RELATIVE_TOLERANCE


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    compact, inputs = pruned("resnet18_cifar")
    with pytest.raises(TrainonceError, match=r"must end in \.pt2 or \.onnx"):
        trainonce.export(compact, inputs, tmp_path / "model.pt")
