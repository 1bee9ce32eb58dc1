"""The zoo registry: name -> ZooEntry(factory, tags, description).

Each factory seeds torch itself and returns (model in eval mode, example inputs), where
example inputs are a tensor, a tuple of tensors (positional) or a dict (keyword).
Tags: "cnn", "transformer", "hf", "rnn", "reference" (full-size, parameter count is
pinned), "slow" (noticeably slower to build/export), plus construct tags such as
"depthwise", "grouped", "concat", "custom_op", "tied", "multi_input", and "supernet"
(many summed/concatenated branches, for erasing mode).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from zoo import (
    audio,
    convnext,
    custom,
    densenet,
    efficientnet,
    hf,
    misc,
    mobilenet,
    multibranch,
    resnet,
    resnext,
    rnn,
    supernet,
    swin,
    transformer,
    unet,
    vgg,
    vit,
    yolo,
)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[[], tuple[nn.Module, Any]]
    tags: frozenset[str]
    description: str


def _entry(factory: Callable[[], tuple[nn.Module, Any]], *tags: str) -> ZooEntry:
    doc = (factory.__doc__ or "").strip().splitlines()
    return ZooEntry(factory.__name__, factory, frozenset(tags), doc[0] if doc else "")


_ENTRIES = [
    # reference-size CNNs (parameter counts asserted in tests)
    _entry(resnet.resnet18_cifar, "cnn", "reference"),
    _entry(resnet.resnet50_cifar, "cnn", "reference", "slow"),
    _entry(vgg.vgg16_bn, "cnn", "reference"),
    # small CNNs
    _entry(resnet.resnet18_imagenet_small, "cnn"),
    _entry(resnet.resnet50_imagenet_small, "cnn"),
    _entry(densenet.densenet_small, "cnn", "concat"),
    _entry(mobilenet.mobilenetv2_small, "cnn", "depthwise"),
    _entry(resnext.resnext_small, "cnn", "grouped"),
    _entry(unet.unet_small, "cnn", "concat", "conv_transpose"),
    _entry(convnext.convnext_small, "cnn", "depthwise", "layer_scale"),
    _entry(efficientnet.efficientnet_small, "cnn", "depthwise", "se"),
    _entry(multibranch.inception_small, "cnn", "concat"),
    _entry(multibranch.fpn_small, "cnn", "multi_output"),
    _entry(multibranch.shufflenet_small, "cnn", "depthwise", "concat", "shuffle"),
    _entry(yolo.c2f_small, "cnn", "concat", "split"),
    _entry(yolo.split_slice_net, "cnn", "concat", "split"),
    # super-networks for erasing mode (parallel / residual branches summed or concatenated)
    _entry(supernet.darts_supernet, "cnn", "supernet", "concat"),
    _entry(supernet.stacked_unets, "cnn", "supernet", "concat", "conv_transpose"),
    _entry(supernet.super_residual, "cnn", "supernet"),
    _entry(supernet.deep_plain_residual, "cnn", "supernet"),
    # transformers
    _entry(vit.vit_small, "transformer"),
    _entry(vit.vit_small_eager, "transformer"),
    _entry(swin.swin_small, "transformer"),
    _entry(transformer.torch_transformer, "transformer"),
    _entry(transformer.mlp_mixer_small, "transformer"),
    _entry(hf.hf_bert, "transformer", "hf"),
    _entry(hf.hf_bert_eager, "transformer", "hf"),
    _entry(hf.hf_gpt2, "transformer", "hf", "tied"),
    _entry(hf.hf_llama_gqa, "transformer", "hf"),
    # sequence / audio
    _entry(audio.audio_conv1d, "cnn", "audio"),
    _entry(rnn.lstm_model, "rnn"),
    _entry(rnn.gru_model, "rnn"),
    # single-construct models
    _entry(misc.tied_weights, "cnn", "tied"),
    _entry(misc.tied_embedding, "tied"),
    _entry(misc.multi_input, "cnn", "multi_input"),
    _entry(misc.dict_input, "cnn", "multi_input"),
    _entry(custom.custom_op_model, "cnn", "custom_op"),
    _entry(misc.groupnorm_net, "cnn"),
    _entry(misc.instancenorm_net, "cnn"),
    _entry(misc.mlp_bn1d, "mlp"),
    _entry(misc.pixel_shuffle_net, "cnn"),
    _entry(misc.depthwise_multiplier, "cnn", "depthwise"),
    _entry(misc.conv3d_net, "cnn"),
    _entry(misc.convtranspose1d_net, "cnn", "conv_transpose", "grouped"),
    _entry(misc.prelu_net, "cnn"),
    _entry(misc.view_flatten_net, "cnn"),
    _entry(misc.linear3d_head, "cnn"),
    _entry(misc.einsum_net, "cnn"),
]

ZOO: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def build(name: str) -> tuple[nn.Module, Any]:
    """Build zoo model `name`; returns (model in eval mode, example inputs)."""
    return ZOO[name].factory()
