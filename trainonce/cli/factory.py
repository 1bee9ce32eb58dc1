"""Importing the user's code named as ``MODULE:NAME`` (models, data sets, losses).

The current directory is importable, as when running ``python -m``, so that a project's own
modules work without installing them. Every failure is a one-line error naming the setting.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from torch import nn

from trainonce.errors import TrainonceError


def load_callable(spec: str, setting: str = "MODULE:FACTORY") -> Any:
    """Import ``package.module:function``; ``setting`` names the argument or config key in errors."""
    if ":" not in spec:
        raise TrainonceError(f"{setting}: expected MODULE:FACTORY (e.g. zoo.resnet:resnet18_cifar), got {spec!r}")
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TrainonceError(f"{setting}: cannot import module {module_name!r}: {error}") from error
    found = getattr(module, attribute, None)
    if not callable(found):
        raise TrainonceError(f"{setting}: module {module_name!r} has no callable {attribute!r}")
    return found


def build_model(spec: str, setting: str = "MODEL", **kwargs: Any) -> tuple[nn.Module, Any]:
    """Call the model factory ``spec``; it returns a model, or ``(model, example_inputs)``.

    The inputs are ``None`` when the factory returned only a model.
    """
    built = load_callable(spec, setting)(**kwargs)
    model, inputs = built if isinstance(built, tuple) and len(built) == 2 else (built, None)
    if not isinstance(model, nn.Module):
        raise TrainonceError(f"{setting}: {spec} returned {type(model).__name__}, expected an nn.Module or (module, inputs)")
    return model, inputs
