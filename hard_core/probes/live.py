"""The probes a distillation run emits with its snapshots: what the dashboard draws while a run goes.

Every `probe_every` steps the loop asks `RunProbe` for tensors to add to that step's snapshot:

    disagreement                      N x H x W (N x L for 1D): |dKL(T||S)/dx| on the images the student saw
    invariance.<grid>.<model>.acc     accuracy over the grid (model: teacher | student)
    invariance.<grid>.<model>.kl      mean KL(model(x) || model(t(x))) over the grid
    invariance.<grid>.axis.<name>     the grid's axis values (dy, dx; angle; blend; thickness; shift)

Grids (`run_grids`): "shift" always (dy x dx up to the shift suite's strength; a line for 1D), plus the
world's own nuisance as a curve: "rotation" (angle), "polarity" (blend from x to 1 - x), "thickness"
(thinner to thicker). The shift and scarce worlds have shift only; a teacher that is not a shipped one
gets the generic rotation and polarity curves too. The teacher is frozen, so its maps are computed once
(`teacher_maps`) or taken from the kept teacher reference (`use_teacher_maps`, see
hard_core/train/reference.py), and reused.
"""
from __future__ import annotations

import threading

from torch import Tensor, nn

from ..data import Dataset, default_suites
from ..worlds import get_world
from .disagreement import disagreement_map
from .invariance import CURVES, Grid, InvarianceProbe, make_grid

GENERIC = ("rotation", "polarity")  # besides shift, what a teacher of the user's own is probed on


def world_grid(world: str | None) -> str:
    """The grid that shows a world's own nuisance: its suite's curve, else "shift" (the shift world; the
    scarce world, whose measure is in-domain accuracy; 1D data)."""
    suite = get_world(world or "shift").suite
    return suite if suite in CURVES else "shift"


def probe_grid(kind: str, dataset: Dataset) -> Grid:
    """The grid `kind` at this data set's strengths (shift: the shift suite's); ValueError where it does not
    fit (an image grid for 1D signals)."""
    shift = int(default_suites(dataset)["shift"])
    return make_grid(kind, dataset.is_1d, max_shift=shift if kind == "shift" else None)


def run_grids(dataset: Dataset, world: str | None = "shift", teacher: str | None = "default") -> dict[str, Grid]:
    """The invariance grids a run of this data set, world and teacher is probed on, by name: the world's
    own first, then shift, then (a teacher that is not the world's shipped one) the generic curves."""
    if dataset.is_1d:
        return {"shift": probe_grid("shift", dataset)}
    names = dict.fromkeys([world_grid(world), "shift"])
    if teacher not in (None, "default"):
        names |= dict.fromkeys(GENERIC)
    return {name: probe_grid(name, dataset) for name in names}


class RunProbe:
    """Disagreement and invariance maps of a student against its (frozen) teacher, as snapshot tensors.

    images: probe-set size per grid (64 keeps one call near 0.1 s for an MLP on 2 CPU cores).
    grids: by name (default: `run_grids(dataset)`, the shift world's).
    """

    def __init__(self, teacher: nn.Module, dataset: Dataset, device, images: int = 64,
                 grids: dict[str, Grid] | None = None):
        self.teacher = teacher
        grids = run_grids(dataset) if grids is None else grids
        self.probes = {name: InvarianceProbe(dataset.test.x, dataset.test.y, grid, images=images, device=device)
                       for name, grid in grids.items()}
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
