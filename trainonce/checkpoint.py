"""Training checkpoints that resume bit for bit, and refuse to resume the wrong run.

A checkpoint holds the model's and the optimizer's ``state_dict`` (a trainonce optimizer's
decisions live in its ``state``), the RNG states, a *fingerprint* and a digest of every tensor.
The fingerprint is what must match between the run that saved and the run that resumes: the
model's parameter and buffer names, shapes and dtypes, the optimizer class and its base's class,
the parameter-group layout, and for a trainonce optimizer the group structure of its search space
and every setting its decisions depend on (targets, schedule, importance, divisibility).

Restoring is all or nothing: the file is read, its digests checked, the fingerprint compared and
the model and optimizer states checked against the live objects *before* any of them changes;
what differs is named. Files are written to one temporary name and renamed, so a process killed
while saving leaves the previous checkpoint intact, and a failed save leaves no temporary behind.
Only tensors and plain containers are stored (``weights_only`` load).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainonce.errors import TrainonceError
from trainonce.optim.sparse import GroupSparseOptimizer
from trainonce.optim.wrapper import WrappedOptimizer

FORMAT = "trainonce-checkpoint/2"
FINGERPRINT_KEYS = {
    "parameters": "model (parameter names, shapes, dtypes)",
    "buffers": "model (buffer names, shapes, dtypes)",
    "optimizer": "optimizer class",
    "base": "base optimizer class",
    "param_groups": "parameter-group layout (groups, parameters per group)",
    "groups": "search space (node groups)",
    "hyperparameters": "trainonce settings (targets, schedule, importance, divisibility)",
}


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What must match between the run that saved and the run that resumes."""
    base = optimizer.base if isinstance(optimizer, WrappedOptimizer) else optimizer
    found: dict[str, Any] = {
        "parameters": [[name, list(p.shape), str(p.dtype)] for name, p in model.named_parameters()],
        "buffers": [[name, list(b.shape), str(b.dtype)] for name, b in model.named_buffers()],
        "optimizer": _class_path(optimizer),
        "base": _class_path(base),
        "param_groups": [[len(group["params"]), sorted(k for k in group if k != "params")] for group in optimizer.param_groups],
    }
    if isinstance(optimizer, GroupSparseOptimizer):
        found["groups"] = [[g.name, g.size] for g in optimizer.index.node_groups]
        found["hyperparameters"] = optimizer.hyperparameters()
    return found


def _tensors(value: Any, path: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists/tuples, with a readable path."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{path}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{path}/{i}")


def _digest(tensor: torch.Tensor) -> int:
    """CRC-32 of the tensor's bytes (any dtype): one flipped bit changes it."""
    data = tensor.detach().cpu().contiguous().reshape(-1)
    return zlib.crc32(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")


def _digests(payload: dict[str, Any]) -> dict[str, int]:
    return {path: _digest(t) for part in ("model", "optimizer", "rng") for path, t in _tensors(payload[part], part)}


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer, **extra: Any) -> None:
    """Atomically write everything needed to resume (``extra``: e.g. the epoch, a data cursor)."""
    path = Path(path)
    rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {
        "format": FORMAT,
        "fingerprint": fingerprint(model, optimizer),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng,
        "extra": extra,
    }
    payload["digests"] = _digests(payload)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer, *,
                    expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``path``; returns the ``extra`` values saved with it.

    ``expect``: ``extra`` values the checkpoint must have been saved with (e.g. a config's
    fingerprint). Nothing is changed unless everything can be restored.
    """
    path = Path(path)
    payload = _read(path)
    for key, value in (expect or {}).items():
        if payload["extra"].get(key) != value:
            raise TrainonceError(f"{path} belongs to a different {key}: saved {payload['extra'].get(key)!r}, now {value!r}")
    _check_fingerprint(path, payload["fingerprint"], fingerprint(model, optimizer))
    _check_model_state(path, model, payload["model"])
    if isinstance(optimizer, WrappedOptimizer):
        try:
            optimizer.check_state_dict(payload["optimizer"])
        except TrainonceError as error:
            raise TrainonceError(f"checkpoint {path}: {error}") from None
    rng = payload["rng"]
    if not isinstance(rng, dict) or not isinstance(rng.get("cpu"), torch.Tensor) or rng["cpu"].dtype != torch.uint8:
        raise TrainonceError(f"checkpoint {path}: the saved RNG state is malformed")
    optimizer.load_state_dict(payload["optimizer"])  # validated above; torch's own load changes nothing until it succeeds
    model.load_state_dict(payload["model"])
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return dict(payload["extra"])


def _read(path: Path) -> dict[str, Any]:
    """The payload, checked for format, completeness and tensor digests."""
    if not path.exists():
        raise TrainonceError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises several types for truncated/garbled files
        raise TrainonceError(f"checkpoint {path} cannot be read (truncated or corrupted?): {error}") from error
    if not isinstance(payload, dict) or not str(payload.get("format", "")).startswith("trainonce-checkpoint/"):
        raise TrainonceError(f"{path} is not a trainonce checkpoint (save it with trainonce.save_checkpoint)")
    if payload["format"] != FORMAT:
        raise TrainonceError(f"{path} has format {payload['format']!r}; this trainonce reads {FORMAT!r}")
    missing = [key for key in ("fingerprint", "model", "optimizer", "rng", "extra", "digests") if key not in payload]
    if missing:
        raise TrainonceError(f"checkpoint {path} lacks {', '.join(missing)}")
    saved, found = payload["digests"], _digests(payload)
    if saved != found:
        differing = sorted(set(saved) ^ set(found)) or sorted(k for k in saved if saved[k] != found[k])
        raise TrainonceError(f"checkpoint {path} is corrupted: tensor {differing[0]!r} does not match its digest "
                             f"({len(differing)} tensor(s) differ); restore it from a good copy")
    return payload


def _check_fingerprint(path: Path, saved: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, what in FINGERPRINT_KEYS.items():
        if saved.get(key) != expected.get(key):
            raise TrainonceError(f"checkpoint {path} was saved with a different {what}: "
                                 f"{_difference(saved.get(key), expected.get(key))}")


def _check_model_state(path: Path, model: nn.Module, state: Any) -> None:
    """What ``load_state_dict`` would reject, found before it copies anything."""
    if not isinstance(state, dict):
        raise TrainonceError(f"checkpoint {path}: the model state is not a dict")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise TrainonceError(f"checkpoint {path}: model tensors missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in own.items():
        saved = state[name]
        if not isinstance(saved, torch.Tensor) or saved.shape != tensor.shape or saved.dtype != tensor.dtype:
            described = f"{list(saved.shape)} {saved.dtype}" if isinstance(saved, torch.Tensor) else type(saved).__name__
            raise TrainonceError(f"checkpoint {path}: model tensor {name!r} is {described}, the model has "
                                 f"{list(tensor.shape)} {tensor.dtype}")


def _difference(saved: Any, current: Any) -> str:
    if isinstance(saved, list) and isinstance(current, list):
        for i, (a, b) in enumerate(zip(saved, current, strict=False)):
            if a != b:
                return f"entry {i}: saved {a}, now {b}"
        return f"saved {len(saved)} entries, now {len(current)}"
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        return "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in keys)
    return f"saved {saved}, now {current}"
