"""Small real image data sets that need no download: digits (inside scikit-learn) and Fashion-MNIST.

Both loaders return the same thing — normalised float images ``N x 1 x H x W`` and int64 labels,
already split into train and test — so that the demo and the benchmarks can switch data sets with
one argument. Nothing here ever touches the network: Fashion-MNIST is looked for in a few places
on disk and, when it is missing, the error says where it looked and how to provide the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from trainonce.errors import TrainonceError

FASHION_MNIST_FILE = "fashion_mnist.npz"
FASHION_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
DATA_ENV = "TRAINONCE_DATA"
CACHE_DIR = Path("~/.cache/trainonce")
# The repository root (parent of the ``trainonce`` package): a checkout keeps data beside it.
REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("digits", "fashion-mnist")


class ImageData(NamedTuple):
    """A train/test split of images (float, ``N x 1 x H x W``, standardised) and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(torch.cat([self.y_train, self.y_test]).max()) + 1

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_dataset(name: str, path: str | os.PathLike[str] | None = None) -> ImageData:
    """Load a data set by its command-line name (``digits`` or ``fashion-mnist``)."""
    if name == "digits":
        return load_digits()
    if name == "fashion-mnist":
        return load_fashion_mnist(path)
    raise TrainonceError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 8x8 handwritten digits, with a fixed stratified train/test split.

    The split seed is separate from any training seed so that runs with different seeds are
    scored on the same test images.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise TrainonceError(
            "the digits data set ships with scikit-learn, which is not installed: "
            "pip install 'trainonce[data]' (or pip install scikit-learn)"
        ) from None
    bunch = sklearn_digits()
    images, labels = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    return _standardise(x_train, y_train, x_test, y_test)


def load_fashion_mnist(path: str | os.PathLike[str] | None = None) -> ImageData:
    """Fashion-MNIST (60,000 train / 10,000 test 28x28 images) from a local ``fashion_mnist.npz``.

    See :func:`find_fashion_mnist` for where the file is looked for; it is never downloaded.
    """
    file = find_fashion_mnist(path)
    try:
        with np.load(file) as arrays:
            missing = [key for key in FASHION_MNIST_KEYS if key not in arrays]
            if missing:
                raise TrainonceError(f"{file} is not a Fashion-MNIST file: missing arrays {', '.join(missing)} "
                                     f"(expected {', '.join(FASHION_MNIST_KEYS)})")
            x_train, y_train, x_test, y_test = (arrays[key] for key in FASHION_MNIST_KEYS)
    except (OSError, ValueError) as error:
        raise TrainonceError(f"cannot read {file}: {error}") from error
    for images in (x_train, x_test):
        if images.ndim != 3:
            raise TrainonceError(f"{file}: expected images of shape N x H x W, got {images.shape}")
    return _standardise(x_train.astype(np.float32), y_train.astype(np.int64),
                        x_test.astype(np.float32), y_test.astype(np.int64))


def fashion_mnist_locations(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where ``fashion_mnist.npz`` is looked for, in order.

    An explicit ``path`` (a file or a directory) is the only place searched when given: a user
    who names a location wants an error, not a silent fallback, when it is wrong. Otherwise:
    ``$TRAINONCE_DATA`` (file or directory), ``~/.cache/trainonce/``, then ``../shared/data``
    relative to the current directory and to the repository root.
    """
    if path is not None:
        return [_as_file(Path(path).expanduser())]
    locations = []
    if os.environ.get(DATA_ENV):
        locations.append(_as_file(Path(os.environ[DATA_ENV]).expanduser()))
    locations.append(CACHE_DIR.expanduser() / FASHION_MNIST_FILE)
    locations.append(Path.cwd() / ".." / "shared" / "data" / FASHION_MNIST_FILE)
    locations.append(REPO_ROOT / ".." / "shared" / "data" / FASHION_MNIST_FILE)
    return _unique(locations)


def find_fashion_mnist(path: str | os.PathLike[str] | None = None) -> Path:
    """The first existing file among :func:`fashion_mnist_locations`, or an error listing them."""
    locations = fashion_mnist_locations(path)
    for location in locations:
        if location.is_file():
            return location
    searched = "\n".join(f"  - {location}" for location in locations)
    raise TrainonceError(
        f"{FASHION_MNIST_FILE} not found; looked in:\n{searched}\n"
        f"Provide it with --data PATH (a file or a directory), set {DATA_ENV}, or copy it to "
        f"{CACHE_DIR / FASHION_MNIST_FILE}. The file holds uint8 arrays {', '.join(FASHION_MNIST_KEYS)} "
        "(images N x 28 x 28, labels N); trainonce never downloads it. One way to build it: the "
        "Fashion-MNIST release files (github.com/zalandoresearch/fashion-mnist) loaded with numpy and "
        "saved with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
    )


def _as_file(path: Path) -> Path:
    return path / FASHION_MNIST_FILE if path.is_dir() else path


def _unique(paths: Sequence[Path]) -> list[Path]:
    """Drop locations that resolve to the same file (cwd is often the repository root)."""
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def _standardise(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> ImageData:
    """Scale images with the *training* mean and std (no test statistics leak into training)."""
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0

    def images(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((array - mean) / std).float().unsqueeze(1).contiguous()

    def labels(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).long()

    return ImageData(images(x_train), labels(y_train), images(x_test), labels(y_test))
