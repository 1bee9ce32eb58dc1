"""Data loaders: fixed digits split, Fashion-MNIST found where a user puts it, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainonce.data import datasets, load_dataset, load_digits, load_fashion_mnist
from trainonce.errors import TrainonceError


def test_digits_split_is_fixed_standardised_and_stratified() -> None:
    data = load_digits()
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.num_classes == 10 and data.image_shape == (1, 8, 8)
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3
    assert torch.bincount(data.y_test, minlength=10).min() >= 35  # every class in the test set
    again = load_digits()
    assert all(torch.equal(a, b) for a, b in zip(data, again, strict=True))
    assert not torch.equal(load_digits(split_seed=1).y_test, data.y_test)


def write_fake_fashion(path: Path, train: int = 12, test: int = 6) -> Path:
    """A tiny file with the real key names, shapes and dtypes."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
             y_train=(np.arange(train) % 10).astype(np.uint8),
             x_test=rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
             y_test=(np.arange(test) % 10).astype(np.uint8))
    return path


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No fashion_mnist.npz in any default location (the real one beside the repo is hidden)."""
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path / "repo")
    (tmp_path / "work" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "here")
    return tmp_path


def test_fashion_from_an_explicit_file_or_directory(nowhere: Path) -> None:
    file = write_fake_fashion(nowhere / "mine" / "fashion_mnist.npz")
    for given in (file, file.parent, str(file)):
        data = load_fashion_mnist(given)
        assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (6, 1, 28, 28)
        assert data.y_train.dtype == torch.int64 and data.num_classes == 10


def test_fashion_from_the_environment_variable(nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write_fake_fashion(nowhere / "env" / "fashion_mnist.npz", train=20)
    monkeypatch.setenv(datasets.DATA_ENV, str(file.parent))
    assert load_dataset("fashion-mnist").x_train.shape[0] == 20
    monkeypatch.setenv(datasets.DATA_ENV, str(file))
    assert load_dataset("fashion-mnist").x_train.shape[0] == 20


def test_fashion_from_the_cache_and_from_shared_data_beside_the_repo(nowhere: Path) -> None:
    write_fake_fashion(nowhere / "repo" / ".." / "shared" / "data" / "fashion_mnist.npz", train=14)
    assert load_fashion_mnist().x_train.shape[0] == 14
    write_fake_fashion(nowhere / "cache" / "fashion_mnist.npz", train=16)  # the cache comes first
    assert load_fashion_mnist().x_train.shape[0] == 16


def test_missing_file_error_lists_every_location_and_the_remedies(nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.DATA_ENV, str(nowhere / "env-dir"))
    with pytest.raises(TrainonceError) as caught:
        load_fashion_mnist()
    message = str(caught.value)
    expected = [nowhere / "env-dir", nowhere / "cache" / "fashion_mnist.npz",
                nowhere / "work" / "shared" / "data" / "fashion_mnist.npz",
                nowhere / "shared" / "data" / "fashion_mnist.npz"]
    for location in expected:
        assert str(location.resolve()) in message
    assert "--data" in message and "TRAINONCE_DATA" in message and "never downloads" in message


def test_an_explicit_path_is_not_silently_replaced(nowhere: Path) -> None:
    write_fake_fashion(nowhere / "cache" / "fashion_mnist.npz")
    with pytest.raises(TrainonceError, match="typo"):
        load_fashion_mnist(nowhere / "typo.npz")


def test_wrong_files_and_names_are_clear_errors(nowhere: Path) -> None:
    bad = nowhere / "bad.npz"
    np.savez(bad, images=np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(TrainonceError, match="missing arrays x_train, y_train, x_test, y_test"):
        load_fashion_mnist(bad)
    (nowhere / "garbage.npz").write_text("not a zip")
    with pytest.raises(TrainonceError, match="cannot read"):
        load_fashion_mnist(nowhere / "garbage.npz")
    with pytest.raises(TrainonceError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
