"""The op rule table, keyed by ATen op packet name. Importing this package registers it.

One module per family of channel behaviour; an op that appears in none of them is unknown
and freezes every space it touches (``Propagation.opaque``).
"""

from trainonce.groups.rules import contraction, elementwise, factory, norm, reduction, shape

__all__ = ["contraction", "elementwise", "factory", "norm", "reduction", "shape"]
