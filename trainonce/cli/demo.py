"""``trainonce demo``: train a small residual CNN with HESSO on real data, then compress it.

The whole recipe in one file, top to bottom: the model, the data, the HESSO schedule, the
training loop, then construction of the compact model, the before/after table and the files
(``training.png``, ``history.json`` and ``compact/``, which ``trainonce.load`` reads back).

With the defaults (scikit-learn's 8x8 digits, 30 epochs) it takes about 30 s on 2 CPU cores;
``--dataset fashion-mnist`` (a local ``fashion_mnist.npz``, 2 epochs) about 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import trainonce
from trainonce.data import DATASETS, ImageData, load_dataset
from trainonce.errors import TrainonceError
from trainonce.metrics import Comparison, count_parameters
from trainonce.optim import HESSOMetrics
from trainonce.optim.schedule import Schedule, make_schedule

# -----------------------------------------------------------------------------------------------
# The model: a ResNet in miniature. Residual sums tie channels across layers, so the search
# space has both kinds of groups HESSO must handle: a stage's trunk (every conv writing into the
# sum) and a block's inner channels (one conv and its BN).


class Block(nn.Module):
    """Basic residual block (He et al., 2016): conv-BN-ReLU, conv-BN, plus a shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:  # a 1x1 projection when the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class DemoNet(nn.Module):
    """Stem, one residual block per stage (each stage halves the resolution), global pool, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128),
                 stem_stride: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.stages = nn.Sequential(*(Block(widths[max(i - 1, 0)], width, stride=1 if i == 0 else 2)
                                      for i, width in enumerate(widths)))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


# -----------------------------------------------------------------------------------------------
# Settings. Digits images are 8x8, so the stem keeps the resolution; Fashion-MNIST's 28x28 are
# halved by the stem so that an epoch of 60,000 images stays affordable on a laptop CPU.


@dataclass(frozen=True)
class Preset:
    """Per-data-set defaults: what fits the image size and the time budget."""

    epochs: int
    batch_size: int
    stem_stride: int
    widths: tuple[int, ...] = (32, 64, 128)


PRESETS = {"digits": Preset(epochs=30, batch_size=64, stem_stride=1),
           "fashion-mnist": Preset(epochs=2, batch_size=128, stem_stride=2)}
METRIC_POINTS = 300  # about this many HESSO metric records per run, for the plots


# -----------------------------------------------------------------------------------------------
# Training


@dataclass
class History:
    """Everything the plots need; saved as ``history.json`` (see ``trainonce.viz.training``)."""

    dataset: str
    target_sparsity: float
    pruning_start: int
    pruning_end: int
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    metrics_step: list[int] = field(default_factory=list)
    group_sparsity: list[float] = field(default_factory=list)
    num_zero_groups: list[int] = field(default_factory=list)
    norm_redundant: list[float] = field(default_factory=list)
    norm_important: list[float] = field(default_factory=list)

    def record_metrics(self, step: int, optimizer: Any) -> None:
        metrics = optimizer.metrics()
        self.metrics_step.append(step)
        self.group_sparsity.append(float(metrics.group_sparsity))
        self.num_zero_groups.append(int(metrics.num_zero_groups))
        self.norm_redundant.append(float(metrics.norm_redundant))
        self.norm_important.append(float(metrics.norm_important))


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled pass over the training set (the data is small enough to live in memory)."""
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        index = order[i:i + batch_size]
        yield x[index], y[index]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes in eval mode (BatchNorm uses its running statistics)."""
    was_training = model.training
    model.eval()
    predictions = torch.cat([model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return predictions


def train(model: nn.Module, optimizer: Any, scheduler: Any, data: ImageData, schedule: Schedule,
          batch_size: int, seed: int, history: History, quiet: bool) -> None:
    """Plain supervised training; HESSO does all the pruning inside ``optimizer.step()``."""
    generator = torch.Generator().manual_seed(seed)
    metrics_every = max(1, schedule.total_steps // METRIC_POINTS)
    step = 0
    with tqdm(total=schedule.total_steps, desc="training", unit="step", disable=quiet, leave=False) as bar:
        while step < schedule.total_steps:
            model.train()
            for x, y in batches(data.x_train, data.y_train, batch_size, generator):
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                history.step.append(step)
                history.loss.append(loss.item())
                if step % metrics_every == 0 or step == schedule.total_steps:
                    history.record_metrics(step, optimizer)
                bar.update(1)
            accuracy = (predict(model, data.x_test) == data.y_test).float().mean().item()
            history.eval_step.append(step)
            history.test_accuracy.append(accuracy)
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{accuracy:.1%}",
                            sparsity=f"{history.group_sparsity[-1]:.2f}")


# -----------------------------------------------------------------------------------------------
# Outputs

def before_after_table(comparison: Comparison, accuracy: tuple[float, float], test_images: int) -> str:
    """``trainonce.compare``'s rows (params, MACs, latency) with the test accuracy of both models on top."""
    c = comparison
    rows = [("", "before", "after", "ratio"),
            ("accuracy", f"{accuracy[0]:.2%}", f"{accuracy[1]:.2%}", f"({test_images:,} test images)"),
            ("params", _si(c.params.full), _si(c.params.compact), f"{c.params.ratio:.3f}x"),
            ("MACs", _si(c.macs.full), _si(c.macs.compact), f"{c.macs.ratio:.3f}x")]
    if c.latency is not None:
        rows.append(("latency", f"{c.latency.full:.3f} ms", f"{c.latency.compact:.3f} ms",
                     f"{c.latency.ratio:.3f}x ({c.latency.speedup:.2f}x speed-up)"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows]
    lines.append(f"max abs output difference: {c.max_abs_diff:.3g} (max |output| {c.output_scale:.3g})")
    return "\n".join(lines)


def _si(n: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n:.0f}"


def write_plots(history: History, path: Path) -> Path | None:
    """Plots are a convenience: without matplotlib the run still succeeds, with a notice."""
    try:
        from trainonce.viz.training import plot_training

        return plot_training(asdict(history), path, title=f"HESSO on {history.dataset}")
    except ImportError:
        print("note: matplotlib is not installed, plots skipped (pip install 'trainonce[plots]')")
        return None


# -----------------------------------------------------------------------------------------------
# The command


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="digits: scikit-learn's 8x8 digits (default); fashion-mnist: a local fashion_mnist.npz")
    parser.add_argument("--data", metavar="PATH", help="fashion_mnist.npz or its directory (default: search "
                        "$TRAINONCE_DATA, ~/.cache/trainonce, ../shared/data)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: 30 for digits, 2 for fashion-mnist)")
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of prunable groups to remove (default 0.5)")
    parser.add_argument("--batch-size", type=int, help="default: 64 for digits, 128 for fashion-mnist")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate of SGD (cosine schedule, default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: this model is too small to "
                        "gain from more, and extra threads slow down sharply on a busy machine)")
    parser.add_argument("--out", default="trainonce-demo", metavar="DIR", help="output directory (default trainonce-demo/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress notes")
    parser.add_argument("--no-plots", action="store_true", help="do not write training.png")


@dataclass(frozen=True)
class Run:
    """The checked settings of one demo run."""

    dataset: str
    data: str | None
    epochs: int
    batch_size: int
    sparsity: float
    lr: float
    seed: int
    threads: int
    out: Path
    quiet: bool
    plots: bool


def check_arguments(args: argparse.Namespace) -> Run:
    """Fill dataset-dependent defaults and reject values that would fail later, less clearly."""
    preset = PRESETS[args.dataset]
    run = Run(args.dataset, args.data, preset.epochs if args.epochs is None else args.epochs,
              preset.batch_size if args.batch_size is None else args.batch_size, args.sparsity, args.lr,
              args.seed, args.threads, Path(args.out), args.quiet, not args.no_plots)
    for name, value in (("--epochs", run.epochs), ("--batch-size", run.batch_size), ("--threads", run.threads)):
        if value < 1:
            raise TrainonceError(f"{name} must be at least 1, got {value}")
    if not 0.0 < run.sparsity < 1.0:
        raise TrainonceError(f"--sparsity must be between 0 and 1 (exclusive), got {run.sparsity}")
    if not run.lr > 0:
        raise TrainonceError(f"--lr must be positive, got {run.lr}")
    return run


def run_demo(args: argparse.Namespace) -> int:
    """``trainonce demo``: train with HESSO, construct, compare, write files. Returns the exit status."""
    run = check_arguments(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(run.threads)
    try:
        demo(run)
    finally:  # in-process callers (tests, notebooks) get their thread count back
        torch.set_num_threads(threads)
    return 0


def demo(run: Run) -> None:
    """Train with HESSO, construct the compact model, report and save."""
    began = time.perf_counter()
    say = (lambda *_: None) if run.quiet else print
    data = load_dataset(run.dataset, run.data)
    preset = PRESETS[run.dataset]
    config: dict[str, Any] = {"in_channels": data.image_shape[0], "num_classes": data.num_classes,
                              "widths": list(preset.widths), "stem_stride": preset.stem_stride}
    torch.manual_seed(run.seed)
    model = DemoNet(**config)
    example = data.x_test[:1]
    space = trainonce.analyze(model, example)
    schedule = make_schedule(run.epochs * math.ceil(len(data.x_train) / run.batch_size))
    say(f"{run.dataset}: {len(data.x_train):,} train / {len(data.x_test):,} test images "
        f"{'x'.join(map(str, data.image_shape[1:]))}, {data.num_classes} classes")
    say(f"DemoNet: {count_parameters(model):,} parameters, N = {space.num_prunable} prunable channel groups; "
        f"HESSO removes {math.floor(space.num_prunable * run.sparsity)} of them in {schedule.periods} periods "
        f"over steps {schedule.start_step}-{schedule.end_step} of {schedule.total_steps}")

    base = torch.optim.SGD(model.parameters(), lr=run.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    optimizer = trainonce.HESSO(base, space, target_sparsity=run.sparsity, start_step=schedule.start_step,
                                pruning_steps=schedule.pruning_steps, periods=schedule.periods)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(base, schedule.total_steps)
    history = History(run.dataset, run.sparsity, schedule.start_step, schedule.end_step)
    train(model, optimizer, scheduler, data, schedule, run.batch_size, run.seed, history, run.quiet)
    if not optimizer.finished:
        raise TrainonceError("HESSO did not finish its pruning periods within the run (a bug: please report it)")

    say("constructing the compact model and measuring...")
    compact = space.construct(optimizer.redundant())  # also checks the optimizer's state against the zeros
    report(model, compact, data, example, optimizer.metrics(), run.threads)
    write_outputs(run, history, compact, config)
    say(f"done in {time.perf_counter() - began:.0f} s")


def report(model: nn.Module, compact: nn.Module, data: ImageData, example: torch.Tensor,
           metrics: HESSOMetrics, threads: int) -> None:
    """Print the sparsity reached and the before/after table (test accuracy of both models on top)."""
    full_predictions, compact_predictions = predict(model, data.x_test), predict(compact, data.x_test)
    accuracy = [(p == data.y_test).float().mean().item() for p in (full_predictions, compact_predictions)]
    agree = int((full_predictions == compact_predictions).sum())
    comparison = trainonce.compare(model, compact, example, threads=threads)
    print(f"\ngroup sparsity {metrics.group_sparsity:.4f} ({metrics.num_zero_groups} of {metrics.num_groups} "
          f"groups removed); full and compact model agree on {agree}/{len(data.y_test)} test predictions")
    print(before_after_table(comparison, (accuracy[0], accuracy[1]), len(data.y_test)))


def write_outputs(run: Run, history: History, compact: nn.Module, config: dict[str, Any]) -> None:
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "history.json").write_text(json.dumps(asdict(history)) + "\n")
    trainonce.save(compact, run.out / "compact", factory=DemoNet, factory_kwargs=config)
    plot = write_plots(history, run.out / "training.png") if run.plots else None
    written = ["history.json", "compact/", *(["training.png"] if plot else [])]
    print(f"wrote {', '.join(written)} to {run.out}/")
