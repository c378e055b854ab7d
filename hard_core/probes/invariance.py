"""Invariance maps: a model's accuracy and output change over a grid of transforms of a fixed probe set.

For every cell of a grid (shift x by shift y, rotation by scale; or a curve along one nuisance: a
rotation angle, a polarity blend, a stroke thickness, 1D shifts) the probe reports the accuracy on the
transformed images and the mean KL(model(x) || model(t(x))): how much the output moves under the
transform (0 = perfectly invariant). A CNN teacher's map is nearly flat; a KD
student trained on centred digits has a bright centre and dark edges; HARD should flatten it.

>>> probe = InvarianceProbe(x_test, y_test, shift_grid(6))     # build once: picks and transforms images
>>> t_map = probe(teacher)                                    # the frozen teacher: compute once
>>> s_map = probe(student)                                    # cheap: call it every few hundred steps
>>> s_map["acc"].shape, s_map["dy"], s_map["dx"]              # (7, 7), rows dy, columns dx
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import eval_mode
from ..data.nuisance import blend_invert, shift, thicken
from ..losses import kl_div

Kind = Literal["shift", "rotation", "polarity", "thickness", "rotation-scale"]
KINDS = ("shift", "rotation", "polarity", "thickness", "rotation-scale")
CURVES = ("rotation", "polarity", "thickness")  # image grids with one axis: the plot is a curve


def rotate_scale(x: Tensor, angles: Tensor, scales: Tensor) -> Tensor:
    """Rotate images (degrees, clockwise as displayed, like torchvision's `affine`) and zoom (>1 = larger) about the centre.

    x: N x C x H x W; angles, scales: N each. Bilinear, zero fill outside the image.
    """
    n, _, h, w = x.shape
    a = torch.deg2rad(angles.to(x.device, torch.float32))
    s = scales.to(x.device, torch.float32)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # output -> input sampling map (inverse rotation, 1/zoom) in pixels (y down), rescaled to
    # grid_sample's [-1, 1] units per axis so non-square images rotate without shear
    theta = torch.stack([torch.stack([cos, sin * h / w, torch.zeros_like(a)], 1),
                         torch.stack([-sin * w / h, cos, torch.zeros_like(a)], 1)], 1)
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class Grid:
    """A grid of transforms: `names[i]` labels axis `axes[i]`; cells are in row-major (C) order.

    kind: "shift" (rows dy, columns dx, integer pixels), "rotation-scale" (rows angle in degrees,
    columns zoom factor), "shift-1d" (one axis of integer sample shifts), or one axis of images:
    "rotation" (angle, degrees), "polarity" (blend: 0 = x, 1 = 1 - x), "thickness" (pixels a stroke
    is thickened by; negative thins it).
    """

    kind: str
    names: tuple[str, ...]
    axes: tuple[Tensor, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def apply(self, x: Tensor, cells: range) -> Tensor:
        """The images x transformed by each cell in `cells`, stacked cell-major: len(cells) * N images."""
        cols = self.shape[-1]
        params = [divmod(c, cols) if len(self.shape) == 2 else (c,) for c in cells]
        if self.kind == "rotation-scale":
            angles = torch.stack([self.axes[0][i] for i, _ in params]).repeat_interleave(len(x))
            scales = torch.stack([self.axes[1][j] for _, j in params]).repeat_interleave(len(x))
            return rotate_scale(x.repeat(len(params), *[1] * (x.dim() - 1)), angles, scales)
        if self.kind in CURVES:  # one transform of the whole probe set per cell, cell-major
            values = [self.axes[0][c] for (c,) in params]
            if self.kind == "rotation":
                angles = torch.stack(values).repeat_interleave(len(x))
                return rotate_scale(x.repeat(len(params), *[1] * (x.dim() - 1)), angles, torch.ones_like(angles))
            if self.kind == "polarity":  # the polarity world's inversion, reached gradually
                return torch.cat([blend_invert(x, float(v)) for v in values])
            return torch.cat([thicken(x, int(v)) for v in values])  # the thickness suite's own transform
        # shifts: the shift suite's own transform (zero fill; 1D signals replicate their ends)
        if self.kind == "shift":
            return torch.cat([shift(x, dx=int(self.axes[1][j]), dy=int(self.axes[0][i])) for i, j in params])
        return torch.cat([shift(x, dx=int(self.axes[0][i])) for (i,) in params])


def _shift_axis(max_shift: int, step: int | None) -> Tensor:
    # default step: about 7 cells per axis (6 -> -6..6 by 2; 3 -> -3..3 by 1)
    step = step or max(1, math.ceil(max_shift / 3))
    if max_shift < 0 or step < 1:
        raise ValueError(f"need max_shift >= 0 and step >= 1, got {max_shift} and {step}")
    k = max_shift // step
    return step * torch.arange(-k, k + 1)


def shift_grid(max_shift: int = 6, step: int | None = None) -> Grid:
    """Integer shifts dy x dx in -max_shift..max_shift (rows dy, columns dx).

    >>> shift_grid(6).axes[0]        # tensor([-6, -4, -2,  0,  2,  4,  6])
    """
    axis = _shift_axis(max_shift, step)
    return Grid("shift", ("dy", "dx"), (axis, axis.clone()))


def rotation_scale_grid(max_angle: float = 30.0, max_scale: float = 0.25, cells: int = 7) -> Grid:
    """Angles in [-max_angle, max_angle] (rows) x zoom in [1 - max_scale, 1 + max_scale] (columns).

    Defaults match the rotation and scale suites' default strengths; odd `cells` keeps the identity in.
    """
    if cells < 1 or not 0 <= max_scale < 1:
        raise ValueError(f"need cells >= 1 and 0 <= max_scale < 1, got {cells} and {max_scale}")
    angles = torch.linspace(-max_angle, max_angle, cells) if cells > 1 else torch.zeros(1)
    scales = torch.linspace(1 - max_scale, 1 + max_scale, cells) if cells > 1 else torch.ones(1)
    return Grid("rotation-scale", ("angle", "scale"), (angles, scales))


def shift_1d_grid(max_shift: int = 8, step: int = 1) -> Grid:
    """Integer shifts of 1D signals in -max_shift..max_shift (a vector: the plot is a line)."""
    return Grid("shift-1d", ("shift",), (_shift_axis(max_shift, step),))


def rotation_grid(max_angle: float = 90.0, step: float = 15.0) -> Grid:
    """Angles -max_angle..max_angle degrees by `step` (a curve; the rotation world's teacher learned +-45)."""
    if max_angle < 0 or step <= 0:
        raise ValueError(f"need max_angle >= 0 and step > 0, got {max_angle} and {step}")
    k = int(max_angle // step)
    return Grid("rotation", ("angle",), (step * torch.arange(-k, k + 1, dtype=torch.float32),))


def polarity_grid(cells: int = 9) -> Grid:
    """Blends from x (0) to 1 - x (1) in `cells` even steps; at 0.5 every image is flat grey, unreadable."""
    if cells < 2:
        raise ValueError(f"need at least 2 cells, got {cells}")
    return Grid("polarity", ("blend",), (torch.linspace(0, 1, cells),))


def thickness_grid(thinner: int = 1, thicker: int = 2) -> Grid:
    """Strokes `thinner` pixels thinner .. `thicker` pixels thicker (the world's teacher learned +-1; at 2 px
    thinner a 40-px canvas's digits are erased and every model is at chance)."""
    if thinner < 0 or thicker < 0:
        raise ValueError(f"need thinner, thicker >= 0, got {thinner} and {thicker}")
    return Grid("thickness", ("thickness",), (torch.arange(-thinner, thicker + 1, dtype=torch.float32),))


def make_grid(kind: Kind, one_d: bool, *, max_shift: int | None = None, step: int | None = None,
              max_angle: float = 30.0, max_scale: float = 0.25, cells: int = 7) -> Grid:
    """The grid of `kind` for images or (one_d) signals; shift defaults: 6 px for images, 8 for 1D.
    The curves (rotation, polarity, thickness) take their own defaults (`rotation_grid`, ...)."""
    if kind not in KINDS:
        raise ValueError(f"unknown invariance grid '{kind}'; choose from: {', '.join(KINDS)}")
    if one_d:
        if kind != "shift":
            raise ValueError(f"grid '{kind}' is for images; 1D signals have only: shift")
        return shift_1d_grid(8 if max_shift is None else max_shift, step or 1)
    if kind == "shift":
        return shift_grid(6 if max_shift is None else max_shift, step)
    if kind in CURVES:
        return {"rotation": rotation_grid, "polarity": polarity_grid, "thickness": thickness_grid}[kind]()
    return rotation_scale_grid(max_angle, max_scale, cells)


class InvarianceProbe:
    """Accuracy and KL(model(x) || model(t(x))) over a grid, on a fixed, seeded subset of (x, y).

    images: probe-set size (a seeded random choice; mnist5k's test split is sorted by class, so its
    first rows would be all zeros). 128 keeps an MLP student's map near 0.2 s on 2 CPU cores; pass
    more for a smoother map. The transformed set is computed once when it fits in `max_bytes`
    (7 x 7 shifts of 128 40x40 images: 40 MB), else per batch on every call.
    temperature: of the KL between clean and transformed outputs. batch_size: images per forward
    (256: conv nets run ~2x faster on the CPU than with 2048, an MLP runs as fast). x may be uint8
    (taken as /255); device: where the probe set lives (default: x's), the models' device.

    >>> probe = InvarianceProbe(x, y, shift_grid(6), images=128)
    >>> out = probe(model)     # {"acc": 7x7, "kl": 7x7, "dy": 7, "dx": 7}, float tensors on the CPU
    """

    def __init__(self, x: Tensor, y: Tensor, grid: Grid, *, images: int = 128, seed: int = 0,
                 temperature: float = 1.0, batch_size: int = 256, max_bytes: float = 100e6, device=None):
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"need as many labels as images (and at least one), got {len(x)} and {len(y)}")
        if images < 1 or batch_size < 1 or temperature <= 0:
            raise ValueError("images, batch_size and temperature must be positive")
        if (grid.kind == "shift-1d") != (x.dim() == 3):
            raise ValueError(f"grid '{grid.kind}' does not fit inputs of shape {tuple(x.shape[1:])}")
        if len(x) > images:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(x), generator=g)[:images].sort().values.to(x.device)
            x, y = x[idx], y[idx]
        x, y = x.to(device or x.device), y.to(device or x.device)  # pick first, then move only the subset
        self.x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        self.y = y.long()
        self.grid, self.temperature, self.batch_size = grid, temperature, batch_size
        size = len(grid) * self.x.numel() * self.x.element_size()
        self.cached = self.grid.apply(self.x, range(len(grid))) if size <= max_bytes else None

    def _chunks(self):
        """The transformed probe set, cell-major, in pieces of about `batch_size` images."""
        if self.cached is not None:
            for i in range(0, len(self.cached), self.batch_size):
                yield self.cached[i:i + self.batch_size]
            return
        per = max(1, self.batch_size // len(self.x))  # whole cells per piece
        for c in range(0, len(self.grid), per):
            yield self.grid.apply(self.x, range(c, min(c + per, len(self.grid))))

    @torch.no_grad()
    def probe(self, model: nn.Module) -> dict[str, Tensor]:
        """{"acc": grid shape, "kl": grid shape, <axis name>: axis values, ...}, on the CPU.

        The model runs in eval mode and gets its train/eval flags back.
        """
        with eval_mode(model):
            ref = model(self.x).float()
            logits = torch.cat([model(chunk).float() for chunk in self._chunks()])
        cells, n = len(self.grid), len(self.x)
        logits = logits.view(cells, n, -1)
        acc = (logits.argmax(-1) == self.y).float().mean(1)
        ref = ref.unsqueeze(0).expand(cells, n, ref.shape[-1])
        kl = kl_div(ref.reshape(cells * n, -1), logits.reshape(cells * n, -1), self.temperature, "none")
        out = {"acc": acc.view(self.grid.shape).cpu(), "kl": kl.view(cells, n).mean(1).view(self.grid.shape).cpu()}
        out.update({name: axis.float() for name, axis in zip(self.grid.names, self.grid.axes)})
        return out

    __call__ = probe


def invariance_maps(teacher: nn.Module, student: nn.Module, x: Tensor, y: Tensor, kind: Kind = "shift", *,
                    images: int = 128, seed: int = 0, **grid_options) -> dict[str, dict[str, Tensor]]:
    """Both models' maps on one probe set: {"teacher": map, "student": map} (see `InvarianceProbe`).

    grid_options go to `make_grid` (max_shift, step, max_angle, max_scale, cells).

    >>> maps = invariance_maps(teacher, student, x_test, y_test, "shift", max_shift=6)
    >>> maps["student"]["acc"][3, 3], maps["student"]["acc"][0, 0]     # centre vs corner (-6, -6)
    """
    probe = InvarianceProbe(x, y, make_grid(kind, x.dim() == 3, **grid_options), images=images, seed=seed)
    return {"teacher": probe(teacher), "student": probe(student)}
