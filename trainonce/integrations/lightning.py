"""Prune while Lightning trains: a callback around the optimizers of ``configure_optimizers``.

``PruningCallback`` analyses the LightningModule when fitting is set up (on the CPU, before the
strategy moves it), wraps every optimizer that trains prunable groups into a trainonce
optimizer once the strategy has built them, and replaces them in ``trainer.optimizers``. The LR
schedulers stay attached to the base optimizers; since the wrapper shares their
``param_groups`` and ``state``, they keep stepping the learning rate, and checkpoints save and
resume the pruning decisions with the optimizer state (Lightning restores it after
``on_fit_start``, into the wrapper). Automatic and manual optimization call
``optimizer.step(closure)``; the wrapper passes the closure to the base step, so the forward,
backward and gradient clipping inside it run as usual, once per optimizer step, which is one
pruning step (gradient accumulation included).

    model = MyModule()  # with example_input_array, or PruningCallback(example_inputs=...)
    pruning = PruningCallback(target_sparsity=0.5)
    Trainer(max_steps=1000, callbacks=[pruning]).fit(model, data)
    compact = pruning.compact
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.optim import Optimizer

import trainonce
from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.integrations.plan import PruningPlan, construct_compact, sparsity_metrics
from trainonce.optim.hesso import HESSO
from trainonce.optim.sparse import GroupSparseOptimizer

try:
    import lightning.pytorch as pl
except ImportError:
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError as error:  # Lightning is an optional dependency of trainonce
        raise ImportError("trainonce.integrations.lightning needs Lightning: pip install 'trainonce[lightning]'") from error


class PruningCallback(pl.Callback):
    """Train and prune with a Lightning ``Trainer``; ``.compact`` holds the compact module after fitting.

    The LightningModule is analysed with ``example_inputs`` or its ``example_input_array``,
    unless a ``space`` (from ``trainonce.analyze`` on the module or a submodule) is given.
    ``options``: the keyword arguments of ``optimizer_cls`` (``target_sparsity=``,
    ``target_flops=``, ...); ``start_step``, ``pruning_steps`` and ``periods`` default to
    fractions of ``trainer.estimated_stepping_batches``. ``construct``: build and verify the
    compact model when fitting ends. ``group_sparsity`` and ``zero_groups`` are logged every
    training batch.
    """

    def __init__(self, *, example_inputs: Any = None, space: SearchSpace | None = None,
                 optimizer_cls: type[GroupSparseOptimizer] = HESSO, construct: bool = True, **options: Any) -> None:
        self.example_inputs = example_inputs
        self.space = space
        self.plan = PruningPlan(optimizer_cls, options)
        self.construct = construct
        self.optimizers: list[GroupSparseOptimizer] = []
        self.compact: nn.Module | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.space is not None:
            return
        inputs = self.example_inputs if self.example_inputs is not None else pl_module.example_input_array
        if inputs is None:
            raise TrainonceError(f"{type(pl_module).__name__} has no example_input_array: set it, or pass "
                                 "PruningCallback(example_inputs=...) or PruningCallback(space=trainonce.analyze(...))")
        self.space = trainonce.analyze(pl_module, inputs)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.space is not None
        produced = {id(piece.tensor) for group in self.space.prunable_groups for piece in group.producers}
        replaced: list[Optimizer] = []
        self.optimizers = []
        for base in trainer.optimizers:
            if any(id(p) in produced for group in base.param_groups for p in group["params"]):
                wrapped = self.plan.wrap(base, self.space, trainer.estimated_stepping_batches)
                self.optimizers.append(wrapped)
                replaced.append(wrapped)
            else:
                replaced.append(base)
        if not self.optimizers:
            raise TrainonceError(f"no optimizer of {type(pl_module).__name__}.configure_optimizers trains a prunable group; "
                                 "return an optimizer over self.parameters()")
        trainer.optimizers = replaced

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        pl_module.log_dict(sparsity_metrics(self.optimizers), on_step=True, on_epoch=False)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.construct and self.optimizers:
            self.compact = construct_compact(self.optimizers)
