"""Probes: read-only measurements of teachers, students and augmentations (no training)."""
from __future__ import annotations

from .tstddev import batch_indices, rank_augmentations, t_stddev

__all__ = ["batch_indices", "rank_augmentations", "t_stddev"]
