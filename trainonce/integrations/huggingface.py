"""Prune while ``transformers.Trainer`` trains: one callback, the Trainer's own optimizer and scheduler.

``PruningCallback`` wraps the optimizer the Trainer built (``args.optim`` with its weight-decay
grouping, learning rate and scheduler) into a trainonce optimizer when training begins, when
the run's number of optimizer steps (``state.max_steps``: epochs x update steps per epoch, or
``max_steps``) is known and fits the pruning schedule. Because the trainonce optimizer shares
``param_groups`` and ``state`` with the base, the Trainer's scheduler keeps stepping the learning
rate and its checkpoints save and resume the pruning decisions with the optimizer state.
Gradient clipping and accumulation need nothing: the Trainer clips before ``step`` and calls
``step`` once per accumulated batch, which is one pruning step.

    space = trainonce.analyze(model, example_inputs)
    pruning = PruningCallback(space, target_sparsity=0.5)
    Trainer(model=model, args=args, train_dataset=data, callbacks=[pruning]).train()
    compact = pruning.compact
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.optim import Optimizer

from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.integrations.plan import PruningPlan, construct_compact, sparsity_metrics
from trainonce.optim.hesso import HESSO
from trainonce.optim.sparse import GroupSparseOptimizer

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as error:  # transformers is an optional dependency of trainonce
    raise ImportError("trainonce.integrations.huggingface needs transformers and accelerate: "
                      "pip install 'trainonce[hf]'") from error


class PruningCallback(TrainerCallback):
    """Train and prune with ``transformers.Trainer``; ``.compact`` holds the compact model after training.

    ``space``: from ``trainonce.analyze`` on the model given to the Trainer. ``options``: the
    keyword arguments of ``optimizer_cls`` (``target_sparsity=``, ``target_flops=``, ...);
    ``start_step``, ``pruning_steps`` and ``periods`` default to fractions of the run. If the
    Trainer was given a trainonce optimizer (``optimizers=(HESSO(...), scheduler)``), that one is
    used as is and ``space`` may be left out. ``construct``: build and verify the compact model
    when training ends. Group sparsity is added to every Trainer log (``state.log_history`` and
    the callbacks after this one).
    """

    def __init__(self, space: SearchSpace | None = None, *, optimizer_cls: type[GroupSparseOptimizer] = HESSO,
                 construct: bool = True, **options: Any) -> None:
        self.space = space
        self.plan = PruningPlan(optimizer_cls, options)
        self.construct = construct
        self.optimizer: GroupSparseOptimizer | None = None
        self.compact: nn.Module | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       optimizer: Optimizer | None = None, **kwargs: Any) -> None:
        holder, inner = None, optimizer
        while isinstance(getattr(inner, "optimizer", None), Optimizer):  # accelerate's AcceleratedOptimizer, maybe nested
            holder, inner = inner, inner.optimizer  # type: ignore[union-attr]
        if isinstance(inner, GroupSparseOptimizer):
            self.optimizer = inner
            return
        if self.space is None:
            raise TrainonceError("PruningCallback needs the search space: PruningCallback(trainonce.analyze(model, inputs), ...)")
        if holder is None or inner is None:
            raise TrainonceError(f"the Trainer's optimizer ({type(optimizer).__name__}) is not one accelerate prepared, so it cannot be "
                                 "wrapped in place: pass Trainer(optimizers=(trainonce.HESSO(base, space, ...), scheduler))")
        self.optimizer = self._wrap(inner, state.max_steps)
        install(holder, self.optimizer)

    def _wrap(self, base: Optimizer, total_steps: int) -> GroupSparseOptimizer:
        """The trainonce optimizer over ``base``, with the decisions of a checkpoint the Trainer resumed from.

        On ``resume_from_checkpoint`` the Trainer loads the saved state into the base before
        callbacks run; the pruning state rides along under its string key, and a new trainonce
        optimizer starts from scratch, so it is loaded again through the wrapper.
        """
        assert self.space is not None
        saved = base.state_dict() if self.plan.optimizer_cls.STATE_KEY in base.state else None
        wrapped = self.plan.wrap(base, self.space, total_steps)
        if saved is not None:
            wrapped.load_state_dict(saved)
        return wrapped

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.optimizer is None or logs is None:
            return
        metrics = sparsity_metrics([self.optimizer])
        logs.update(metrics)
        if state.log_history:  # Trainer.log records the entry just before calling on_log
            state.log_history[-1].update(metrics)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.construct and self.optimizer is not None:
            self.compact = construct_compact([self.optimizer])


def install(holder: Any, optimizer: GroupSparseOptimizer) -> None:
    """Put ``optimizer`` inside accelerate's ``AcceleratedOptimizer`` as if it had been prepared with it.

    With a GradScaler (fp16), accelerate swaps in, for each step, a step method bound to the
    optimizer it was prepared with, to detect skipped steps; rebinding it to ``optimizer`` keeps
    that step from bypassing the pruning.
    """
    holder.optimizer = optimizer
    if getattr(holder, "scaler", None) is not None:
        from accelerate.optimizer import patch_optimizer_step

        holder._optimizer_original_step_method = optimizer.step
        holder._optimizer_patched_step_method = patch_optimizer_step(holder, optimizer.step)
