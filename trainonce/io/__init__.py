"""trainonce.io: save and load compact models without pickle, export them to .pt2 and ONNX."""

from trainonce.io.exporter import export
from trainonce.io.load import load
from trainonce.io.save import save

__all__ = ["export", "load", "save"]
