"""Weights in safetensors: every tensor stored once, tied names recorded as aliases.

safetensors refuses tensors that share memory (a tied embedding and LM head are one tensor under
two names). Each distinct tensor is written under its first name, the other names map to it in
``aliases``, and loading hands the *same* tensor object to every name, so ties survive the round
trip. Distinct tensors that merely view one storage are written as separate copies.

``model.safetensors`` holds exactly the ``state_dict`` (what ``save_pretrained`` writes, so
``from_pretrained`` finds nothing unexpected); non-persistent buffers (rotary frequencies,
position ids), which a skeleton built on the meta device lacks, go to ``buffers.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.io.spec import tensor_names

WEIGHTS = "model.safetensors"
BUFFERS = "buffers.safetensors"


def write(model: nn.Module, directory: Path) -> dict[str, str]:
    """Write the weight files; returns ``{alias: stored name}`` for tied tensors."""
    persistent = set(model.state_dict(keep_vars=True))
    files: dict[str, dict[str, torch.Tensor]] = {WEIGHTS: {}, BUFFERS: {}}
    first_name: dict[int, str] = {}
    aliases: dict[str, str] = {}
    storages: set[tuple[torch.device, int]] = set()
    for name, tensor, _ in tensor_names(model):
        if tensor.is_meta:
            raise TrainonceError(f"{name} is on the meta device: a model without weights cannot be saved")
        if id(tensor) in first_name:
            aliases[name] = first_name[id(tensor)]
            continue
        first_name[id(tensor)] = name
        data = tensor.detach()
        storage = (data.device, data.untyped_storage().data_ptr())
        files[WEIGHTS if name in persistent else BUFFERS][name] = data.clone() if storage in storages else data.contiguous()
        storages.add(storage)
    for file, stored in files.items():
        if stored or file == WEIGHTS:
            # "format": "pt" is what transformers' from_pretrained looks for in a safetensors header
            _safetensors().torch.save_file(stored, str(directory / file), metadata={"format": "pt"})
        else:  # left by an earlier save into the same directory
            (directory / file).unlink(missing_ok=True)
    return aliases


def read(directory: Path, aliases: dict[str, str], device: str | torch.device) -> dict[str, torch.Tensor]:
    """Every tensor by every name; aliases are the same object as the name they point to.

    Each tensor is copied out of the memory-mapped file into its own allocation: views into the
    file sit at unaligned addresses, where CPU kernels take other code paths and round
    differently (1e-8 changes), and would keep the file mapped for the model's lifetime.
    """
    tensors: dict[str, torch.Tensor] = {}
    for path in (directory / WEIGHTS, directory / BUFFERS):
        if path.exists():
            tensors.update(read_file(path, device))
    for alias, target in aliases.items():
        if target not in tensors:
            raise TrainonceError(f"{directory / 'trainonce.json'}: alias {alias!r} points to {target!r}, which no weight file holds")
        tensors[alias] = tensors[target]
    return tensors


def read_file(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file, copied out of the mapping; a damaged file is named."""
    try:
        with _safetensors().safe_open(str(path), framework="pt", device=str(device)) as file:
            return {name: file.get_tensor(name).clone() for name in file.keys()}  # noqa: SIM118
    except TrainonceError:
        raise
    except Exception as error:  # safetensors raises its own error types for truncated or garbled files
        raise TrainonceError(f"{path} cannot be read (truncated or corrupted?): {type(error).__name__}: {error}") from None


def write_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
    _safetensors().torch.save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path),
                                   metadata={"format": "pt"})


def _safetensors() -> ModuleType:
    """safetensors is imported on first use: it is an optional dependency of trainonce."""
    try:
        import safetensors
        import safetensors.torch
    except ImportError as error:
        raise TrainonceError("trainonce.save and trainonce.load need safetensors: pip install safetensors") from error
    return safetensors
