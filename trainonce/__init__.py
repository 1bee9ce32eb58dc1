"""trainonce: train and compress any PyTorch network in one run (OTOv3 / HESSO)."""

from trainonce.checkpoint import load_checkpoint, save_checkpoint
from trainonce.errors import AnalysisError, CaptureError, ConstructionError, TrainonceError
from trainonce.groups.search_space import SearchSpace, analyze
from trainonce.metrics import compare
from trainonce.optim import DHSPG, HESSO, HESSOCRIC, HESSOMetrics

__all__ = ["DHSPG", "HESSO", "HESSOCRIC", "AnalysisError", "CaptureError", "ConstructionError", "HESSOMetrics", "SearchSpace", "TrainonceError", "analyze", "compare", "load_checkpoint", "save_checkpoint"]
__version__ = "0.1.0"
