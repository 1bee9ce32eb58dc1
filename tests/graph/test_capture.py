"""Capture: parameters by identity, input forms, HF models, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainonce.errors import CaptureError, TrainonceError
from trainonce.graph.capture import capture
from trainonce.graph.ir import ValueKind
from zoo import build


def test_parameters_are_mapped_by_identity_including_tied_names() -> None:
    model, inputs = build("tied_embedding")
    graph, _ = capture(model, inputs)
    by_identity = {id(v.tensor): v for v in graph.parameters}
    for name, tensor in model.named_parameters():
        assert id(tensor) in by_identity, name
    shared = by_identity[id(model.embed.weight)]
    assert set(shared.fqns) == {"embed.weight", "head.weight"}


def test_input_forms_tensor_tuple_dict() -> None:
    for name, count in (("resnet18_imagenet_small", 1), ("multi_input", 2), ("dict_input", 2)):
        model, inputs = build(name)
        graph, _ = capture(model, inputs)
        assert len(graph.inputs) == count
        assert all(v.kind is ValueKind.INPUT for v in graph.inputs)


def test_capture_restores_training_mode_and_hf_cache_flag() -> None:
    model, inputs = build("hf_gpt2")
    model.train()
    model.config.use_cache = True
    graph, _ = capture(model, inputs)
    assert model.training and model.config.use_cache is True
    assert graph.outputs, "HF output dataclass flattened to tensors"


def test_nodes_know_their_module() -> None:
    model, inputs = build("resnet18_cifar")
    graph, _ = capture(model, inputs)
    convs = [n for n in graph.nodes if n.op == "aten.conv2d.default"]
    assert len(convs) == 20
    assert convs[0].module == "conv1" and "layer1.0.conv1" in {n.module for n in convs}


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent Python control flow cannot be exported
            return x * 2
        return x


def test_export_failure_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match=r"torch\.export could not trace DataDependent"):
        capture(DataDependent(), torch.randn(3))


def test_bad_example_inputs() -> None:
    with pytest.raises(TrainonceError, match=r"example_inputs must be"):
        capture(nn.Linear(2, 2), 3)
