"""Moved to ``solver.layers.efficiency`` (the CLI needs it too); kept for old imports."""

from solver.layers.efficiency import Efficiency, PathCost, compute_efficiency, layer_leaves

__all__ = ["Efficiency", "PathCost", "compute_efficiency", "layer_leaves"]
