"""trainonce: train and compress any PyTorch network in one run (OTOv3 / HESSO)."""

from trainonce.checkpoint import load_checkpoint, save_checkpoint
from trainonce.errors import AnalysisError, CaptureError, ConstructionError, NonFiniteError, TrainonceError
from trainonce.groups.erasing import ErasingSpace
from trainonce.groups.search_space import SearchSpace, analyze
from trainonce.io import export, load, save
from trainonce.metrics import compare
from trainonce.optim import DHSPG, H2SPG, HESSO, HESSOCRIC, HESSOMetrics

__all__ = ["DHSPG", "H2SPG", "HESSO", "HESSOCRIC", "AnalysisError", "CaptureError", "ConstructionError", "ErasingSpace", "HESSOMetrics", "NonFiniteError", "SearchSpace", "TrainonceError", "analyze", "compare", "export", "load", "load_checkpoint", "save", "save_checkpoint"]
__version__ = "0.1.0"
