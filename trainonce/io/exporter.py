"""``trainonce.export``: the compact model as a ``torch.export`` program (.pt2) or an ONNX file.

Both go through one ``torch.export`` (non-strict) trace in eval mode without a KV cache, the same
capture analysis uses, so whatever trainonce could analyse it can export. The batch dimension is
made dynamic when the model allows it (a deployed model rarely runs at the example's batch size);
otherwise the program is specialised to the example shapes like any ``torch.export`` program.

ONNX uses the ``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9), fed
the very program above. Should it fail, the legacy TorchScript exporter is tried with a warning
that says why, since it still covers some models the new one does not.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from trainonce.errors import TrainonceError
from trainonce.graph.capture import export as export_static
from trainonce.graph.capture import export_batch_dynamic
from trainonce.graph.execution import tracing_mode
from trainonce.graph.inputs import ExampleInputs

# ONNX files hold weights inline up to protobuf's 2 GiB limit; bigger models need a .data file beside
INLINE_WEIGHT_BYTES = 1 << 30
NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes", "onnxscript", "onnx_ir")


def export(model: torch.nn.Module, example_inputs: Any, path: str | os.PathLike[str], *, dynamic_batch: bool = True,
           opset: int | None = None, verbose: bool = False) -> Path:
    """Write ``model`` to ``path``: ``.pt2`` (``torch.export.save``) or ``.onnx``; returns the path.

    ``example_inputs`` are traced like in :func:`trainonce.analyze` (tensor, tuple or dict of
    keyword inputs). ``opset`` defaults to the ONNX exporter's own (18-20 with torch 2.13, all
    run by onnxruntime). Exporter progress and warnings are shown only with ``verbose=True``.
    """
    path = Path(path)
    if path.suffix not in (".pt2", ".onnx"):
        raise TrainonceError(f"cannot export to {path.name!r}: the file name must end in .pt2 or .onnx")
    inputs = ExampleInputs.of(example_inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet(verbose):
        program = exported_program(model, inputs, dynamic_batch)
        if path.suffix == ".pt2":
            torch.export.save(program, path)
            return path
        failure = _onnx_dynamo(program, inputs, path, opset, verbose)
    if failure is not None:
        warnings.warn(f"the torch.export-based ONNX exporter failed ({failure}); trying the legacy TorchScript "
                      "exporter (static shapes)", stacklevel=2)
        with quiet(verbose):
            _onnx_legacy(model, inputs, path, opset, verbose, failure)
    return path


def exported_program(model: torch.nn.Module, inputs: ExampleInputs, dynamic_batch: bool) -> torch.export.ExportedProgram:
    """The model traced with a dynamic batch dimension if possible, else at the example shapes."""
    program = export_batch_dynamic(model, inputs) if dynamic_batch else None
    return program if program is not None else export_static(model, inputs)


def _onnx_dynamo(program: torch.export.ExportedProgram, inputs: ExampleInputs, path: Path, opset: int | None,
                 verbose: bool) -> str | None:
    """Export with the torch.export-based exporter; the reason it failed, or None."""
    external = sum(t.numel() * t.element_size() for t in program.state_dict.values()) > INLINE_WEIGHT_BYTES
    try:
        torch.onnx.export(program, inputs.args, str(path), kwargs=inputs.kwargs, dynamo=True, opset_version=opset,
                          external_data=external, verbose=verbose)
    except Exception as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), "")
        return f"{type(error).__name__}: {first_line}"
    return None


def _onnx_legacy(model: torch.nn.Module, inputs: ExampleInputs, path: Path, opset: int | None, verbose: bool,
                 failure: str) -> None:
    try:
        with tracing_mode(model), torch.no_grad():
            torch.onnx.export(model, inputs.args, str(path), kwargs=inputs.kwargs, dynamo=False,
                              opset_version=opset, verbose=verbose)
    except Exception as error:
        raise TrainonceError(f"ONNX export of {type(model).__name__} failed with both exporters: torch.export-based "
                             f"({failure}); TorchScript ({type(error).__name__}: {error})") from error


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    """Silence the exporters' log lines, warnings and prints unless ``verbose``."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
