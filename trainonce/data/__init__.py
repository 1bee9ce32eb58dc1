"""trainonce.data: small real data sets for the demo, the examples and the benchmarks (never downloaded):
images (digits, Fashion-MNIST) and English sentences from the standard library's docstrings."""

from trainonce.data.datasets import (
    DATASETS,
    ImageData,
    find_fashion_mnist,
    load_dataset,
    load_digits,
    load_fashion_mnist,
)
from trainonce.data.text import TextCorpus, load_docstring_corpus

__all__ = ["DATASETS", "ImageData", "TextCorpus", "find_fashion_mnist", "load_dataset", "load_digits", "load_docstring_corpus",
           "load_fashion_mnist"]
