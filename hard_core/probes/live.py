"""The probes a distillation run emits with its snapshots: what the dashboard draws while a run goes.

Every `probe_every` steps the loop asks `RunProbe` for tensors to add to that step's snapshot:

    disagreement                      N x H x W (N x L for 1D): |dKL(T||S)/dx| on the images the student saw
    invariance.<grid>.<model>.acc     accuracy over the grid (model: teacher | student)
    invariance.<grid>.<model>.kl      mean KL(model(x) || model(t(x))) over the grid
    invariance.<grid>.axis.<name>     the grid's axis values (e.g. dy, dx; angle, scale; shift)

Grids: "shift" (dy x dx up to the shift suite's strength; a line for 1D) and, for images,
"rotation-scale". The teacher is frozen, so its maps are computed once (`teacher_maps`) or taken from
the kept teacher reference (`use_teacher_maps`, see hard_core/train/reference.py), and reused.
"""
from __future__ import annotations

import threading

from torch import Tensor, nn

from ..data import Dataset, default_suites
from .disagreement import disagreement_map
from .invariance import InvarianceProbe, make_grid


def run_grids(dataset: Dataset) -> dict[str, object]:
    """The invariance grids a run of this data set is probed on, by name."""
    shift = int(default_suites(dataset)["shift"])
    grids = {"shift": make_grid("shift", dataset.is_1d, max_shift=shift)}
    if not dataset.is_1d:
        grids["rotation-scale"] = make_grid("rotation-scale", False)
    return grids


class RunProbe:
    """Disagreement and invariance maps of a student against its (frozen) teacher, as snapshot tensors.

    images: probe-set size per grid (64 keeps one call near 0.1 s for an MLP on 2 CPU cores).
    """

    def __init__(self, teacher: nn.Module, dataset: Dataset, device, images: int = 64):
        self.teacher = teacher
        self.probes = {name: InvarianceProbe(dataset.test.x, dataset.test.y, grid, images=images, device=device)
                       for name, grid in run_grids(dataset).items()}
        self._teacher_maps: dict[str, dict] | None = None
        self._lock = threading.Lock()  # one computation of the teacher's maps, whichever thread asks first

    def teacher_maps(self) -> dict[str, dict]:
        """The teacher's maps per grid, computed at the first call."""
        with self._lock:
            if self._teacher_maps is None:
                self._teacher_maps = {name: probe(self.teacher) for name, probe in self.probes.items()}
            return self._teacher_maps

    def use_teacher_maps(self, maps: dict[str, dict]) -> None:
        """Take the teacher's maps from elsewhere (a kept reference) instead of computing them."""
        with self._lock:
            self._teacher_maps = maps

    def __call__(self, student: nn.Module, x_seen: Tensor, temperature: float) -> dict[str, Tensor]:
        teacher = self.teacher_maps()
        out = {"disagreement": disagreement_map(self.teacher, student, x_seen, temperature).cpu()}
        for name, probe in self.probes.items():
            maps = {"teacher": teacher[name], "student": probe(student)}
            for model, m in maps.items():
                out[f"invariance.{name}.{model}.acc"] = m["acc"]
                out[f"invariance.{name}.{model}.kl"] = m["kl"]
            for axis in probe.grid.names:
                out[f"invariance.{name}.axis.{axis}"] = maps["student"][axis]
        return out
