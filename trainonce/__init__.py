"""trainonce: train and compress any PyTorch network in one run (OTOv3 / HESSO)."""

from trainonce.errors import AnalysisError, CaptureError, ConstructionError, TrainonceError
from trainonce.groups.search_space import SearchSpace, analyze

__all__ = ["analyze", "SearchSpace", "TrainonceError", "CaptureError", "AnalysisError", "ConstructionError"]
__version__ = "0.1.0"
