"""English sentences that every Python installation carries: the docstrings of its standard library.

Why docstrings: a text example must run offline and give the same corpus on every machine with
the same Python, and the standard library's docstrings are several thousand plain English
sentences about many topics (files, networking, numbers, e-mail, dates, ...), written by many
authors. Other directories of ``.py`` files (site-packages) can be added with ``roots``.

Cleaning keeps what reads as a sentence: docstring paragraphs that are not code (no ``>>>``
examples, no indented blocks, no tables), split at sentence ends, 5 to 60 words, ASCII, starting
with a capital letter and ending with ``.``, ``!`` or ``?``, and mostly made of plain words rather
than identifiers. Duplicates (case-insensitive) are dropped, first occurrence wins.

The train/held-out split is by *source file*: the held-out sentences come from files no training
sentence comes from, so a model cannot score well on them by having seen a near-copy (docstrings
of one module repeat themselves). Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import ast
import inspect
import os
import random
import re
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_WORDS, MAX_WORDS = 5, 60
PLAIN_WORD_FRACTION = 0.8  # at least this share of the words are plain words, not code
SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3", "ensurepip"})

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PLAIN_WORD = re.compile(r"^[(\"']?[A-Za-z][a-z]*(?:[-'][a-z]+)*[)\"']?[.,;:!?]?[)\"']?$")
_CODE_MARKS = ("::", ">>>", "...", "==", "->", "**", "__", "http", "www.", "|", "{", "}", "[", "]", "`", "<", ">", "\\", "#", "@", "$")


@dataclass(frozen=True)
class TextCorpus:
    """Training and held-out sentences, and how many source files each came from."""

    train: list[str]
    test: list[str]
    train_files: int
    test_files: int


def standard_library_root() -> Path:
    """Directory of this interpreter's standard library (``.../lib/python3.X``)."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(roots: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``.py`` file under ``roots``, sorted, without test suites and bundled third-party code."""
    files: list[Path] = []
    for root in roots:
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
            files.extend(Path(directory) / name for name in sorted(names) if name.endswith(".py"))
    return sorted(files)


def docstrings(source: str) -> Iterator[str]:
    """Docstrings of the module, classes and functions in ``source`` (nothing if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text:
                yield inspect.cleandoc(text)


def sentences(docstring: str) -> Iterator[str]:
    """The clean English sentences of one docstring (see the module docstring for the rules)."""
    for paragraph in docstring.split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith((" ", "\t", ">>>", "-", "*", "=", ":")) for line in lines):
            continue  # code, a literal block, a list, a table or a field list: not prose
        text = " ".join(line.strip() for line in lines)
        for sentence in _SENTENCE_END.split(text):
            if is_sentence(sentence):
                yield sentence


def is_sentence(text: str) -> bool:
    """Does ``text`` read as one English sentence (length, characters, mostly plain words)?"""
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or not text.isascii():
        return False
    if not text[0].isupper() or text[-1] not in ".!?" or any(mark in text for mark in _CODE_MARKS):
        return False
    plain = sum(1 for word in words if _PLAIN_WORD.match(word))
    return plain >= PLAIN_WORD_FRACTION * len(words)


def sentences_by_file(roots: Sequence[str | os.PathLike[str]] | None = None) -> dict[str, list[str]]:
    """Clean, de-duplicated sentences per source file (files without any are left out)."""
    roots = [standard_library_root()] if roots is None else roots
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for file in python_files(roots):
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        kept = []
        for docstring in docstrings(source):
            for sentence in sentences(docstring):
                key = " ".join(sentence.lower().split())
                if key not in seen:
                    seen.add(key)
                    kept.append(sentence)
        if kept:
            out[str(file)] = kept
    return out


def load_docstring_corpus(num_train: int = 4000, num_test: int = 500, seed: int = 0,
                          roots: Sequence[str | os.PathLike[str]] | None = None) -> TextCorpus:
    """About ``num_test`` held-out sentences from whole files and up to ``num_train`` training ones
    from the other files, both drawn with ``seed``.

    Files are shuffled and taken for the held-out set until it has ``num_test`` sentences (the
    last file is cut, so the count is exact when enough text exists); the training sentences are
    a random sample of the remaining files' sentences.
    """
    by_file = sentences_by_file(roots)
    files = sorted(by_file)
    rng = random.Random(seed)
    rng.shuffle(files)
    test: list[str] = []
    test_files = 0
    while files and len(test) < num_test:
        test.extend(by_file[files.pop()])
        test_files += 1
    train = [sentence for file in files for sentence in by_file[file]]
    rng.shuffle(train)
    return TextCorpus(train=train[:num_train], test=test[:num_test], train_files=len(files), test_files=test_files)
