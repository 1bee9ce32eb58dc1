"""``trainonce prune CONFIG``: a config-driven train-and-compress run that survives interruption.

The run reads top to bottom: build the model and data from the config, analyse, wrap the base
optimizer in the chosen pruning optimizer, train, construct, compare, save. A checkpoint
(``checkpoint.pt`` in the output directory, written atomically) is taken every epoch or every
``train.checkpoint_every`` steps; running the same command again resumes from it and ends with
the same weights as an uninterrupted run, because each epoch's shuffling is seeded by
(seed, epoch) and skipped batches are replayed in order. A checkpoint from a different config
is refused rather than silently continued.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm.auto import tqdm

import trainonce
from trainonce.cli.config import EXAMPLE, PruneConfig, load_config
from trainonce.cli.factory import build_model as build_from_factory
from trainonce.cli.factory import load_callable
from trainonce.data import load_dataset
from trainonce.errors import TrainonceError
from trainonce.graph.inputs import ExampleInputs
from trainonce.optim.schedule import Schedule, make_schedule

CHECKPOINT = "checkpoint.pt"


@dataclass
class Data:
    train: Dataset[Any]
    test: Dataset[Any]


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML or TOML file describing the run (see --example)")
    parser.add_argument("--example", action="store_true", help="print a commented example config and exit")
    parser.add_argument("--restart", action="store_true", help="ignore (delete) an existing checkpoint and start over")
    parser.add_argument("--stop-after", type=int, metavar="STEPS",
                        help="checkpoint and stop after this many steps in total (run again to resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress notes")


def run_prune(args: argparse.Namespace) -> int:
    if args.example:
        print(EXAMPLE, end="")
        return 0
    if not args.config:
        raise TrainonceError("give a config file: trainonce prune CONFIG (trainonce prune --example prints a template)")
    if args.stop_after is not None and args.stop_after < 1:
        raise TrainonceError(f"--stop-after must be at least 1, got {args.stop_after}")
    config = load_config(args.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.train.threads)
    try:
        prune(config, restart=args.restart, stop_after=args.stop_after, quiet=args.quiet)
    finally:
        torch.set_num_threads(threads)
    return 0


# -----------------------------------------------------------------------------------------------
# Building the pieces from the config


def build_data(config: PruneConfig) -> Data:
    name = config.data.dataset
    if ":" in name:
        built = load_callable(name, "data.dataset")()
        if not (isinstance(built, tuple) and len(built) == 2):
            raise TrainonceError(f"data factory {name} must return (train, test) datasets, got {type(built).__name__}")
        return Data(*(_as_dataset(part, name) for part in built))
    data = load_dataset(name, config.data.path)
    return Data(TensorDataset(data.x_train, data.y_train), TensorDataset(data.x_test, data.y_test))


def _as_dataset(part: Any, name: str) -> Dataset[Any]:
    if isinstance(part, tuple) and all(isinstance(t, torch.Tensor) for t in part):
        return TensorDataset(*part)
    if hasattr(part, "__getitem__") and hasattr(part, "__len__"):
        return part
    raise TrainonceError(f"data factory {name} returned {type(part).__name__}: expected a Dataset or (inputs, targets) tensors")


def build_model(config: PruneConfig, data: Data) -> tuple[nn.Module, Any]:
    model, inputs = build_from_factory(config.model.factory, "model.factory", **config.model.kwargs)
    if config.model.input_shape:
        inputs = torch.randn(*config.model.input_shape)
    if inputs is None:  # one test sample, batched
        sample = data.test[0][0]
        inputs = sample.unsqueeze(0) if isinstance(sample, torch.Tensor) else sample
    return model, inputs


def build_loss(name: str) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    if name == "cross_entropy":
        return lambda outputs, targets: F.cross_entropy(_logits(outputs), targets)
    if name == "mse":
        return lambda outputs, targets: F.mse_loss(_logits(outputs), targets)
    if ":" in name:
        return load_callable(name, "train.loss")
    raise TrainonceError(f"'train.loss' must be cross_entropy, mse or MODULE:FUNCTION, got {name!r}")


def _logits(outputs: Any) -> torch.Tensor:
    """Models may return a tensor, a tuple (first item) or an HF output (``logits``)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if hasattr(outputs, "logits"):
        return outputs.logits
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise TrainonceError(f"cannot take logits from a {type(outputs).__name__} output: give 'train.loss: MODULE:FUNCTION'")


def build_optimizer(config: PruneConfig, model: nn.Module, space: Any, schedule: Schedule) -> tuple[Any, Any]:
    o, p = config.optimizer, config.pruning
    found = getattr(torch.optim, o.name, None)
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise TrainonceError(f"'optimizer.name' must be a torch.optim optimizer class (SGD, AdamW, ...), got {o.name!r}")
    base_class: Any = found  # a concrete optimizer: its constructor takes lr
    try:
        base = base_class(model.parameters(), lr=o.lr, **o.kwargs)
    except TypeError as error:
        raise TrainonceError(f"'optimizer.kwargs' do not fit torch.optim.{o.name}: {error}") from None
    method = getattr(trainonce, p.method)
    arguments: dict[str, Any] = {"start_step": schedule.start_step, **p.target}
    if p.method == "HESSO":
        arguments |= {"pruning_steps": schedule.pruning_steps, "periods": schedule.periods}
    elif p.method in ("DHSPG", "H2SPG"):
        arguments |= {"pruning_steps": schedule.pruning_steps}
    elif p.method == "HESSOCRIC":
        arguments |= {"sampling_steps": max(1, schedule.pruning_steps // (2 * schedule.periods)),
                      "hybrid_steps": max(1, schedule.pruning_steps // 2)}
    try:
        optimizer = method(base, space, **(arguments | p.options))
    except TypeError as error:
        raise TrainonceError(f"'pruning' settings do not fit trainonce.{p.method}: {error}") from None
    total = schedule.total_steps
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(base, total) if o.scheduler == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(base, factor=1.0, total_iters=0))
    return optimizer, scheduler


# -----------------------------------------------------------------------------------------------
# Training


def epoch_batches(dataset: Dataset[Any], batch_size: int, seed: int, epoch: int, skip: int) -> Iterator[Any]:
    """The epoch's batches in an order fixed by (seed, epoch), the first ``skip`` already done."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=RandomSampler(cast(Sized, dataset), generator=generator))
    return itertools.islice(iter(loader), skip, None)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset[Any], batch_size: int) -> float | None:
    """Top-1 accuracy when targets are class labels; ``None`` for other tasks."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for inputs, targets in DataLoader(dataset, batch_size=max(batch_size, 256)):
        if targets.dtype not in (torch.int64, torch.int32) or targets.ndim != 1:
            model.train(was_training)
            return None
        correct += int((_logits(ExampleInputs.of(inputs).call(model)).argmax(dim=-1) == targets).sum())
        total += len(targets)
    model.train(was_training)
    return correct / max(total, 1)


def prune(config: PruneConfig, restart: bool = False, stop_after: int | None = None, quiet: bool = False) -> dict[str, Any] | None:
    """Run (or resume) the whole job; returns the report, or ``None`` when stopped early."""
    say = (lambda *_: None) if quiet else print
    out = Path(config.output)
    checkpoint = out / CHECKPOINT
    if restart and checkpoint.exists():
        checkpoint.unlink()
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    data = build_data(config)
    torch.manual_seed(config.train.seed)
    model, example = build_model(config, data)
    p = config.pruning
    space = trainonce.analyze(model, example, mode=p.mode, exclude=tuple(p.exclude))
    steps_per_epoch = math.ceil(len(data.train) / config.data.batch_size)  # type: ignore[arg-type]
    schedule = make_schedule(config.train.epochs * steps_per_epoch, p.periods, p.warmup, p.window)
    optimizer, scheduler = build_optimizer(config, model, space, schedule)
    loss_fn = build_loss(config.train.loss)
    step = 0
    if checkpoint.exists():
        try:
            extra = trainonce.load_checkpoint(checkpoint, model, optimizer, expect={"config": config.fingerprint()})
        except TrainonceError as error:
            if "belongs to a different config" not in str(error):
                raise
            raise TrainonceError(f"{checkpoint} belongs to a different config: use --restart to start over, or another "
                                 "'output'") from None
        scheduler.load_state_dict(extra["scheduler"])
        step = int(extra["step"])
        say(f"resuming from {checkpoint} at step {step} of {schedule.total_steps}")
    say(f"{config.model.factory}: N = {space.num_prunable} prunable groups; {p.method} {p.target} over steps "
        f"{schedule.start_step}-{schedule.end_step} of {schedule.total_steps}")

    def save() -> None:
        trainonce.save_checkpoint(checkpoint, model, optimizer, step=step, scheduler=scheduler.state_dict(),
                                  config=config.fingerprint())

    every = config.train.checkpoint_every or steps_per_epoch
    last = schedule.total_steps if stop_after is None else min(schedule.total_steps, stop_after)
    model.train()
    with tqdm(total=schedule.total_steps, initial=step, desc="training", unit="step", disable=quiet) as bar:
        while step < last:
            epoch, done = divmod(step, steps_per_epoch)
            for inputs, targets in epoch_batches(data.train, config.data.batch_size, config.train.seed, epoch, done):

                def closure(inputs: Any = inputs, targets: torch.Tensor = targets) -> torch.Tensor:
                    optimizer.zero_grad()
                    loss = loss_fn(ExampleInputs.of(inputs).call(model), targets)
                    loss.backward()
                    return loss.detach()

                loss = optimizer.step(closure)
                scheduler.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step % every == 0 or step == last:
                    save()
                if step >= last:
                    break
    if step < schedule.total_steps:
        say(f"stopped at step {step} of {schedule.total_steps}; run the same command again to resume")
        return None
    return finish(config, model, space, optimizer, data, example, out, began, say)


def finish(config: PruneConfig, model: nn.Module, space: Any, optimizer: Any, data: Data, example: Any, out: Path,
           began: float, say: Callable[..., None]) -> dict[str, Any]:
    """Construct (verified inside), measure, save the compact model and the report."""
    say("constructing the compact model and measuring...")
    compact = space.construct(optimizer.redundant())
    comparison = trainonce.compare(model, compact, example, threads=config.train.threads)
    accuracy = (evaluate(model, data.test, config.data.batch_size), evaluate(compact, data.test, config.data.batch_size))
    target = out / "compact"
    if target.exists():
        shutil.rmtree(target)
    trainonce.save(compact, target, example_inputs=example, factory=config.model.factory,
                   factory_kwargs=config.model.kwargs)
    report = {"config": asdict(config), "seconds": round(time.perf_counter() - began, 1),
              "num_prunable": space.num_prunable, "removed": sum(len(v) for v in optimizer.redundant().values()),
              "accuracy": {"full": accuracy[0], "compact": accuracy[1]},
              "params": {"full": comparison.params.full, "compact": comparison.params.compact},
              "macs": {"full": comparison.macs.full, "compact": comparison.macs.compact},
              "latency_ms": None if comparison.latency is None else
              {"full": comparison.latency.full, "compact": comparison.latency.compact},
              "max_abs_diff": comparison.max_abs_diff}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    if accuracy[0] is not None:
        say(f"test accuracy: full {accuracy[0]:.2%}, compact {accuracy[1]:.2%}")
    say(comparison.table())
    say(f"wrote compact/ (trainonce.load), report.json and {CHECKPOINT} to {out}/")
    return report
