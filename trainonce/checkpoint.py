"""Training checkpoints that resume bit for bit, and refuse to resume the wrong run.

A checkpoint holds the model's and the optimizer's ``state_dict`` (a trainonce optimizer's
decisions live in its ``state``), the RNG states and a *fingerprint*: the model's parameter
names and shapes and, for a trainonce optimizer, the group structure of its search space. Loading
into a different model, a differently analysed space or another optimizer is an error that says
what differs, never a silent wrong resume. Files are written to a temporary name and renamed,
so a process killed while saving leaves the previous checkpoint intact; a truncated or corrupted
file is reported as such. Only tensors and plain containers are stored (``weights_only`` load).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.optim.sparse import GroupSparseOptimizer

FORMAT = "trainonce-checkpoint/1"


def fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What must match between the run that saved and the run that resumes."""
    found: dict[str, Any] = {
        "parameters": [[name, list(p.shape)] for name, p in model.named_parameters()],
        "optimizer": type(optimizer).__name__,
    }
    if isinstance(optimizer, GroupSparseOptimizer):
        found["groups"] = [[g.name, g.size] for g in optimizer.index.node_groups]
    return found


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer, **extra: Any) -> None:
    """Atomically write everything needed to resume (``extra``: e.g. the epoch, a data cursor)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "fingerprint": fingerprint(model, optimizer),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "extra": extra,
    }
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``path``; returns the ``extra`` values saved with it."""
    path = Path(path)
    if not path.exists():
        raise TrainonceError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises several types for truncated/garbled files
        raise TrainonceError(f"checkpoint {path} cannot be read (truncated or corrupted?): {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainonceError(f"{path} is not a trainonce checkpoint (save it with trainonce.save_checkpoint)")
    expected = fingerprint(model, optimizer)
    for key in ("optimizer", "parameters", "groups"):
        if payload["fingerprint"].get(key) != expected.get(key):
            raise TrainonceError(f"checkpoint {path} was saved from a different {_what(key)}: {_difference(payload['fingerprint'].get(key), expected.get(key))}")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"])
    return dict(payload["extra"])


def _what(key: str) -> str:
    return {"optimizer": "optimizer class", "parameters": "model (parameter names/shapes)", "groups": "search space (node groups)"}[key]


def _difference(saved: Any, current: Any) -> str:
    if isinstance(saved, list) and isinstance(current, list):
        for i, (a, b) in enumerate(zip(saved, current, strict=False)):
            if a != b:
                return f"entry {i}: saved {a}, now {b}"
        return f"saved {len(saved)} entries, now {len(current)}"
    return f"saved {saved}, now {current}"
