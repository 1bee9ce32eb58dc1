"""``transformers.Trainer`` with ``PruningCallback``: exact sparsity on schedule, compact model, bitwise resume."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import trainonce
from trainonce.metrics import count_parameters
from trainonce.optim.schedule import make_schedule

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from trainonce.integrations.huggingface import PruningCallback, install

SEQ_LEN = 12
TOTAL_STEPS = 24
TARGET = 0.5


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def token_batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 100, (n, SEQ_LEN), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def dataset() -> list[dict[str, torch.Tensor]]:
    """64 sequences labelled by their first token: 8 batches of 8 per epoch."""
    batch = token_batch(64, seed=1)
    labels = (batch["input_ids"][:, 0] >= 50).long()
    return [{"input_ids": batch["input_ids"][i], "attention_mask": batch["attention_mask"][i], "labels": labels[i]} for i in range(64)]


def arguments(output_dir: Path, save_steps: int | None = None) -> TrainingArguments:
    """Gradient accumulation 2 (4 optimizer steps an epoch), clipping at 0.5, AdamW with weight decay, linear LR decay."""
    return TrainingArguments(
        output_dir=str(output_dir), max_steps=TOTAL_STEPS, per_device_train_batch_size=8, gradient_accumulation_steps=2,
        learning_rate=1e-3, weight_decay=0.01, max_grad_norm=0.5, logging_steps=4, seed=0, use_cpu=True,
        report_to="none", disable_tqdm=True,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500)


class Recorder(TrainerCallback):
    """Zero groups and base learning rate after every optimizer step."""

    def __init__(self, pruning: PruningCallback) -> None:
        self.pruning = pruning
        self.zero: list[int] = []
        self.lr: list[float] = []

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        opt = self.pruning.optimizer
        assert opt is not None
        self.zero.append(int(opt.zero_mask().sum()))
        self.lr.append(float(opt.base.param_groups[0]["lr"]))


def expected_zero_groups(opt: trainonce.HESSO, steps_done: int) -> int:
    """HESSO's guarantee: after each period its cumulative quota is exactly zero; K after the last."""
    schedule, k = opt.schedule, opt.num_target
    done = min(schedule.periods, max(0, steps_done - schedule.start) // schedule.length)
    return k if done == schedule.periods else (k // schedule.periods) * done


def train(output_dir: Path, *, save_steps: int | None = None, resume: Path | None = None,
          construct: bool = True) -> tuple[nn.Module, PruningCallback, Recorder, Trainer]:
    model = tiny_bert()
    space = trainonce.analyze(model, token_batch(2, seed=0))
    pruning = PruningCallback(space, target_sparsity=TARGET, construct=construct)
    recorder = Recorder(pruning)
    trainer = Trainer(model=model, args=arguments(output_dir, save_steps), train_dataset=dataset(), callbacks=[pruning, recorder])
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return model, pruning, recorder, trainer


def test_trainer_prunes_on_schedule_constructs_and_resumes_bitwise(tmp_path: Path) -> None:
    model, pruning, recorder, trainer = train(tmp_path / "run", save_steps=6)
    opt = pruning.optimizer
    assert isinstance(opt, trainonce.HESSO)
    # the Trainer's own AdamW with its weight-decay grouping, wrapped; the schedule fitted to max_steps
    assert type(opt.base) is torch.optim.AdamW
    assert sorted(group["weight_decay"] for group in opt.param_groups) == [0.0, 0.01]
    fitted = make_schedule(TOTAL_STEPS)
    assert (opt.schedule.start, opt.schedule.length * opt.schedule.periods) == (fitted.start_step, fitted.pruning_steps)
    # one pruning step per optimizer step (accumulation), exactly K zero groups on schedule
    assert opt.own_state["step"] == trainer.state.global_step == TOTAL_STEPS
    assert pruning.space is not None and opt.index.num_groups == pruning.space.num_prunable
    assert recorder.zero == [expected_zero_groups(opt, t) for t in range(1, TOTAL_STEPS + 1)]
    assert recorder.zero[-1] == int(TARGET * opt.index.num_groups) == int((opt.index.squared_norms() == 0).sum())
    # the Trainer's linear schedule still drives the base learning rate
    assert recorder.lr == pytest.approx([1e-3 * (TOTAL_STEPS - t) / TOTAL_STEPS for t in range(1, TOTAL_STEPS + 1)])
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == TOTAL_STEPS // 4 and all(math.isfinite(loss) for loss in losses)
    assert max(entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry) > 0.5  # clipping acted
    logged = [entry["group_sparsity"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged[0] < TARGET and logged[-1] == recorder.zero[-1] / opt.index.num_groups

    compact = pruning.compact
    assert compact is not None and count_parameters(compact) < count_parameters(model)
    model.eval()
    compact.eval()
    with torch.no_grad():
        inputs = token_batch(4, seed=5)
        assert torch.allclose(compact(**inputs).logits, model(**inputs).logits, atol=1e-5)

    # Trainer checkpoints carry the pruning state with the optimizer's; resuming mid-pruning is bitwise
    checkpoint = tmp_path / "run" / "checkpoint-6"
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    assert saved["state"][trainonce.HESSO.STATE_KEY]["step"] == 6
    resumed, resumed_pruning, _, _ = train(tmp_path / "resumed", resume=checkpoint, construct=False)
    for (name, x), y in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert resumed_pruning.optimizer is not None
    assert torch.equal(resumed_pruning.optimizer.own_state["period_of"], opt.own_state["period_of"])


def test_a_trainonce_optimizer_given_to_the_trainer_is_used_as_is(tmp_path: Path) -> None:
    model = tiny_bert()
    space = trainonce.analyze(model, token_batch(2, seed=0))
    opt = trainonce.HESSO(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), space, target_sparsity=0.25,
                          start_step=2, pruning_steps=8, periods=4)
    pruning = PruningCallback(construct=False)
    trainer = Trainer(model=model, args=arguments(tmp_path, None), train_dataset=dataset(), callbacks=[pruning],
                      optimizers=(opt, None))
    trainer.train()
    assert pruning.optimizer is opt and opt.finished
    assert int(opt.zero_mask().sum()) == int(0.25 * space.num_prunable)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the Trainer's scheduler was built on it


def test_install_keeps_pruning_under_a_grad_scaler() -> None:
    """accelerate rebinds ``step`` to the prepared optimizer for fp16; after ``install`` it is the trainonce one."""
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    Accelerator(cpu=True)  # accelerate's shared state, as the Trainer creates it with use_cpu=True
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    space = trainonce.analyze(model, torch.randn(2, 4))
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    holder = AcceleratedOptimizer(base, device_placement=False, scaler=torch.amp.GradScaler("cpu"))
    opt = trainonce.HESSO(base, space, target_sparsity=0.5, pruning_steps=2, periods=1)
    install(holder, opt)
    for _ in range(3):
        holder.zero_grad()
        holder.scaler.scale(model(torch.randn(3, 4)).sum()).backward()
        holder.step()
    assert opt.own_state["step"] == 3 and not holder.step_was_skipped
    assert int(opt.zero_mask().sum()) == 4


def test_missing_transformers_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "trainonce.integrations.huggingface")
    with pytest.raises(ImportError, match=r"pip install 'trainonce\[hf\]'"):
        importlib.import_module("trainonce.integrations.huggingface")
