"""Structured-sparsity optimizers that wrap any ``torch.optim`` optimizer."""

from trainonce.optim.cric import HESSOCRIC
from trainonce.optim.dhspg import DHSPG
from trainonce.optim.h2spg import H2SPG
from trainonce.optim.halfspace import Penalty
from trainonce.optim.hesso import HESSO, HESSOMetrics
from trainonce.optim.saliency import CRITERIA, DEFAULT_IMPORTANCE

__all__ = ["CRITERIA", "DEFAULT_IMPORTANCE", "DHSPG", "H2SPG", "HESSO", "HESSOCRIC", "HESSOMetrics", "Penalty"]
