"""Lightning ``Trainer`` with ``PruningCallback``: exact sparsity on schedule, closures, scheduler, compact, resume."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainonce
from trainonce.metrics import count_parameters
from trainonce.optim.schedule import make_schedule

pl = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from trainonce.integrations.lightning import PruningCallback  # noqa: E402

TOTAL_STEPS = 30
TARGET = 0.5
LR = 0.1
DECAY = 0.95


class ConvNet(pl.LightningModule):
    """Conv-BN-ReLU, conv, pooled linear head; SGD with momentum and a per-step LambdaLR."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 4)
        self.example_input_array = torch.randn(2, 3, 8, 8)
        self.training_steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.training_steps += 1  # runs inside the closure that optimizer.step receives
        return self.loss(batch)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=LR, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: DECAY ** step)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ManualNet(ConvNet):
    """Manual optimization: the model's optimizer steps with a closure; a temperature has its own optimizer."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.temperature = nn.Parameter(torch.ones(()))
        self.closure_calls = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        model_opt, temperature_opt = self.optimizers()

        def closure() -> torch.Tensor:
            self.closure_calls += 1
            loss = self.loss(batch) * self.temperature
            model_opt.zero_grad()
            temperature_opt.zero_grad()
            self.manual_backward(loss)
            return loss

        model_opt.step(closure=closure)
        temperature_opt.step()

    def configure_optimizers(self) -> Any:
        model_params = [p for name, p in self.named_parameters() if name != "temperature"]
        return torch.optim.Adam(model_params, lr=1e-2), torch.optim.SGD([self.temperature], lr=1e-3)


def data() -> DataLoader:
    """64 samples, 8 batches per epoch, in a fixed order (Lightning does not checkpoint the shuffling RNG)."""
    generator = torch.Generator().manual_seed(1)
    dataset = TensorDataset(torch.randn(64, 3, 8, 8, generator=generator), torch.randint(0, 4, (64,), generator=generator))
    return DataLoader(dataset, batch_size=8)


def trainer(max_steps: int, *callbacks: pl.Callback, **options: Any) -> pl.Trainer:
    settings = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                "enable_model_summary": False, **options}
    return pl.Trainer(max_steps=max_steps, callbacks=list(callbacks), **settings)


class Recorder(pl.Callback):
    """Zero groups after each batch that ended an optimizer step."""

    def __init__(self, pruning: PruningCallback) -> None:
        self.pruning = pruning
        self.zero: dict[int, int] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.zero[trainer.global_step] = int(self.pruning.optimizers[0].zero_mask().sum())


def expected_zero_groups(opt: trainonce.HESSO, steps_done: int) -> int:
    """HESSO's guarantee: after each period its cumulative quota is exactly zero; K after the last."""
    schedule, k = opt.schedule, opt.num_target
    done = min(schedule.periods, max(0, steps_done - schedule.start) // schedule.length)
    return k if done == schedule.periods else (k // schedule.periods) * done


def assert_exact_compact(model: nn.Module, compact: nn.Module | None) -> None:
    assert compact is not None and count_parameters(compact) < count_parameters(model)
    model.eval()
    compact.eval()
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.allclose(compact(x), model(x), atol=1e-5)


def test_automatic_optimization_prunes_on_schedule_with_clipping_and_accumulation() -> None:
    model = ConvNet()
    pruning = PruningCallback(target_sparsity=TARGET)
    recorder = Recorder(pruning)
    fit = trainer(TOTAL_STEPS, pruning, recorder, accumulate_grad_batches=2, gradient_clip_val=1.0)
    fit.fit(model, data())
    [opt] = pruning.optimizers
    assert isinstance(opt, trainonce.HESSO) and fit.optimizers == [opt]
    fitted = make_schedule(TOTAL_STEPS)
    assert (opt.schedule.start, opt.schedule.length * opt.schedule.periods) == (fitted.start_step, fitted.pruning_steps)
    # every optimizer step ran its closure (the second batch of each accumulation) and was one pruning step
    assert model.training_steps == 2 * TOTAL_STEPS
    assert opt.own_state["step"] == fit.global_step == TOTAL_STEPS
    assert recorder.zero == {t: expected_zero_groups(opt, t) for t in range(TOTAL_STEPS + 1)}
    k = int(TARGET * opt.index.num_groups)
    assert recorder.zero[TOTAL_STEPS] == k == int((opt.index.squared_norms() == 0).sum())
    assert float(fit.callback_metrics["group_sparsity"]) == k / opt.index.num_groups
    # the scheduler, still attached to the base optimizer, stepped the learning rate every step
    [config] = fit.lr_scheduler_configs
    assert config.scheduler.optimizer is opt.base
    assert opt.param_groups[0]["lr"] == pytest.approx(LR * DECAY ** TOTAL_STEPS)
    assert_exact_compact(model, pruning.compact)


def test_manual_optimization_closure_and_an_optimizer_without_groups() -> None:
    model = ManualNet()
    pruning = PruningCallback(target_sparsity=TARGET, start_step=2, pruning_steps=8, periods=4)
    fit = trainer(2 * 12, pruning)  # two optimizers: global_step counts both, 12 batches
    fit.fit(model, data())
    [opt] = pruning.optimizers
    assert fit.optimizers[0] is opt and type(fit.optimizers[1]) is torch.optim.SGD
    assert model.closure_calls == 12 and opt.own_state["step"] == 12 and opt.finished
    assert int(opt.zero_mask().sum()) == int(TARGET * opt.index.num_groups)
    assert_exact_compact(model, pruning.compact)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # the resumed run need not save again
def test_resume_from_a_lightning_checkpoint_is_bitwise(tmp_path: Path) -> None:
    """A checkpoint saved mid-pruning resumes to the uninterrupted run's weights.

    Saved at an epoch's last batch: Lightning replays a map-style epoch from its start, so a
    checkpoint from inside an epoch does not resume bitwise even without pruning.
    """
    options = {"target_sparsity": TARGET, "start_step": 2, "pruning_steps": 16, "periods": 8}
    whole = ConvNet()
    saving = ModelCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=12, save_top_k=-1)
    trainer(TOTAL_STEPS, PruningCallback(construct=False, **options), saving, accumulate_grad_batches=2,
            enable_checkpointing=True).fit(whole, data())
    resumed = ConvNet()
    pruning = PruningCallback(construct=False, **options)
    trainer(TOTAL_STEPS, pruning, accumulate_grad_batches=2).fit(resumed, data(), ckpt_path=tmp_path / "step=12.ckpt")
    saved = torch.load(tmp_path / "step=12.ckpt", weights_only=True)["optimizer_states"][0]["state"][trainonce.HESSO.STATE_KEY]
    assert saved["step"] == 12 and 0 < int((saved["period_of"] >= 0).sum()) < int(TARGET * pruning.optimizers[0].index.num_groups)
    assert pruning.optimizers[0].own_state["step"] == TOTAL_STEPS
    for (name, x), y in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_missing_lightning_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "trainonce.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install 'trainonce\[lightning\]'"):
        importlib.import_module("trainonce.integrations.lightning")
