"""trainonce.viz: pictures of search spaces and of training runs (matplotlib, imported lazily)."""

from trainonce.viz.training import plot_training

__all__ = ["plot_training"]
