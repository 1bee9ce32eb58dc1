"""Fault-tolerant resume: kill a training process mid-pruning, restart it, get the same bits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import trainonce
from trainonce.errors import TrainonceError

from .resume_worker import make_optimizer
from .test_hesso import SmallResNet, batches, small_setup

ROOT = Path(__file__).resolve().parents[2]


def run_worker(*args: str, kill_after: int | None = None) -> None:
    command = [sys.executable, "-m", "tests.optim.resume_worker", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kill_after is None:
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        return
    process = subprocess.Popen([*command, "--delay", "0.2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"checkpoint {kill_after}":
            process.send_signal(signal.SIGKILL)  # no clean-up, no final save: a crash
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("optimizer", ["hesso", "dhspg", "cric"])
def test_killed_run_resumes_to_the_same_bits(optimizer: str, tmp_path: Path) -> None:
    run_worker(optimizer, str(tmp_path / "straight.ckpt"), str(tmp_path / "straight.pt"))
    run_worker(optimizer, str(tmp_path / "crash.ckpt"), str(tmp_path / "crash.pt"), kill_after=12)  # mid-pruning
    assert not (tmp_path / "crash.pt").exists()
    run_worker(optimizer, str(tmp_path / "crash.ckpt"), str(tmp_path / "crash.pt"))
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "crash.pt", weights_only=True)
    assert int(straight["zero"].sum()) > 0
    assert torch.equal(straight["zero"], resumed["zero"])
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_mismatched_or_corrupted_checkpoints_are_refused(tmp_path: Path) -> None:
    model, inputs, space = small_setup()
    opt = make_optimizer("hesso", model, space)
    path = tmp_path / "run.ckpt"
    trainonce.save_checkpoint(path, model, opt, step=0)

    other = SmallResNet(width=8)
    with pytest.raises(TrainonceError, match="different model"):
        trainonce.load_checkpoint(path, other, make_optimizer("hesso", other, trainonce.analyze(other, inputs)))
    with pytest.raises(TrainonceError, match="different optimizer class"):
        trainonce.load_checkpoint(path, model, make_optimizer("dhspg", model, space))
    narrower = trainonce.analyze(model, inputs, exclude=("block.0",))
    with pytest.raises(TrainonceError, match="different search space"):
        trainonce.load_checkpoint(path, model, make_optimizer("hesso", model, narrower))

    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(TrainonceError, match="truncated or corrupted"):
        trainonce.load_checkpoint(path, model, opt)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(TrainonceError, match="not a trainonce checkpoint"):
        trainonce.load_checkpoint(path, model, opt)
    with pytest.raises(TrainonceError, match="no checkpoint"):
        trainonce.load_checkpoint(tmp_path / "missing.ckpt", nn.Linear(1, 1), opt)


def everything(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Model tensors, optimizer state tensors and the RNG state: what a refused restore must not touch."""
    tensors = [t.detach().clone() for t in model.state_dict().values()]
    for state in opt.state.values():
        if isinstance(state, dict):
            tensors += [v.clone() for v in state.values() if isinstance(v, torch.Tensor)]
    return [*tensors, torch.get_rng_state()]


def trained(base: str = "sgd", groups: int = 1, target: float = 0.5) -> tuple[nn.Module, trainonce.HESSO]:
    model, _, space = small_setup()
    params = list(model.parameters())
    layout = [{"params": params}] if groups == 1 else [{"params": params[:4]}, {"params": params[4:], "lr": 0.01}]
    opt_base = torch.optim.SGD(layout, lr=0.05, momentum=0.9) if base == "sgd" else torch.optim.Adam(layout, lr=1e-3)
    opt = trainonce.HESSO(opt_base, space, target, start_step=1, pruning_steps=6, periods=2)
    data = batches()
    model.train()
    for step in range(3):
        x, y = data(step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize(("change", "refusal"), [
    ({"base": "adam"}, "different base optimizer class"),
    ({"groups": 2}, "different parameter-group layout"),
    ({"target": 0.6}, r"different trainonce settings .*target_sparsity: saved 0.5, now 0.6"),
])
def test_a_restore_that_cannot_complete_changes_nothing(tmp_path: Path, change: dict[str, object], refusal: str) -> None:
    model, opt = trained()
    path = tmp_path / "run.ckpt"
    trainonce.save_checkpoint(path, model, opt, step=3)
    other_model, other_opt = trained(**change)  # type: ignore[arg-type]
    torch.manual_seed(123)
    before = everything(other_model, other_opt)
    with pytest.raises(TrainonceError, match=refusal):
        trainonce.load_checkpoint(path, other_model, other_opt)
    after = everything(other_model, other_opt)
    assert len(before) == len(after) and all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_one_flipped_bit_in_a_tensor_is_detected(tmp_path: Path) -> None:
    model, opt = trained()
    path = tmp_path / "run.ckpt"
    trainonce.save_checkpoint(path, model, opt, step=3)
    data = bytearray(path.read_bytes())
    raw = model.state_dict()["block.0.weight"].numpy().tobytes()
    where = data.find(raw)
    assert where > 0, "the weight is stored uncompressed"
    data[where + len(raw) // 2] ^= 0x04
    path.write_bytes(bytes(data))
    before = everything(model, opt)
    with pytest.raises(TrainonceError, match=r"corrupted: tensor 'model/block.0.weight'"):
        trainonce.load_checkpoint(path, model, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, everything(model, opt), strict=True))


def test_a_failed_save_leaves_the_last_checkpoint_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt = trained()
    path = tmp_path / "run.ckpt"
    trainonce.save_checkpoint(path, model, opt, step=3)
    good = path.read_bytes()

    def half_written(payload: object, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        trainonce.save_checkpoint(path, model, opt, step=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]
    assert path.read_bytes() == good
