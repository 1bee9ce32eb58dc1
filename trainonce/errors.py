"""Exceptions raised by trainonce.

Every error says what went wrong, where (module path and ATen op when known) and what to do, so
that a user never has to read a traceback of trainonce internals to act on it.
"""

from __future__ import annotations


class TrainonceError(Exception):
    """Base class of every error trainonce raises on purpose."""


class CaptureError(TrainonceError):
    """The model could not be traced by ``torch.export``."""


class AnalysisError(TrainonceError):
    """The traced graph could not be turned into a search space."""


class ConstructionError(TrainonceError):
    """The compact model could not be built, or it does not reproduce the zeroed model."""


class NonFiniteError(TrainonceError, FloatingPointError):
    """A loss or gradient is NaN or infinite at an optimizer step (nothing was stepped)."""
