"""Probes: read-only measurements of teachers, students and augmentations (no training)."""
from __future__ import annotations

from .disagreement import disagreement_map
from .invariance import (Grid, InvarianceProbe, invariance_maps, make_grid, rotation_scale_grid, shift_1d_grid,
                         shift_grid)
from .tstddev import batch_indices, rank_augmentations, t_stddev

__all__ = ["batch_indices", "rank_augmentations", "t_stddev", "disagreement_map", "Grid", "InvarianceProbe",
           "invariance_maps", "make_grid", "shift_grid", "rotation_scale_grid", "shift_1d_grid"]
