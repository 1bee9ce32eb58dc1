"""trainonce.data: small real image data sets for the demo and the benchmarks (never downloaded)."""

from trainonce.data.datasets import (
    DATASETS,
    ImageData,
    find_fashion_mnist,
    load_dataset,
    load_digits,
    load_fashion_mnist,
)

__all__ = ["DATASETS", "ImageData", "find_fashion_mnist", "load_dataset", "load_digits", "load_fashion_mnist"]
