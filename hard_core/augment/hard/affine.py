"""HARD-affine: a spatial-transformer augmentor with bounded per-sample translation, rotation, scale, shear.

A small MLP maps noise (and, optionally, a thumbnail of the image) to one raw value per sample and degree
of freedom; the learned `spread` adds fresh noise to it (`HardAugmentor.explore`), and the transform is
`bound * sin(raw)`. The MLP's last layer starts at zero, so with spread 0 the augmentor is the identity;
the default spread 1 starts it wide, over most of each bound. Why sin and not tanh: tanh saturates, and
a tanh generator pushes every sample to one corner shift, where it stays (tanh'(r) ~ 0) while the
student learns that corner; sin is bounded but never saturates, so a sample can always move
back from a bound. Why a spread: from the identity a rotation augmentor never left it (final angles
within +-2 degrees, rotated accuracy equal to KD's), because the student was trained around the identity
and the disagreement is at a local minimum there. The warp is `affine_grid` + `grid_sample`, so the
disagreement is differentiable with respect to the transform.

Default bounds: 15% of the side for translation (6 px at 40, which is also the canvas padding that
the shift suite uses), 90 degrees (twice the rotation world's 45), +-25% scale, 0.25 shear. Wider
translation bounds transfer shifts worse, because the hardest samples sit far out, partly off the
canvas: on the shift world (600 steps, seed 0) 6 px gave 88.9% shifted accuracy, 8 px 85.4%, 10 px
84.7%. The teacher-consistency term (lambda) keeps the augmentor inside what the teacher still reads.

>>> aug = AffineAugmentor((1, 40, 40), dof={"translate": 6.0, "rotate": 30.0})
>>> x_aug, p = aug(torch.rand(4, 1, 40, 40))   # p["tx"], p["ty"] in pixels, p["rotate"] in degrees
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UserError
from .base import HardAugmentor, register_augmentor

# Default bound of each degree of freedom: translation as a fraction of the image side (6 px at 40),
# rotation in degrees, scale as +-fraction, shear as a fraction (x' = x + shear * y).
DEFAULT_BOUNDS = {"translate": 0.15, "rotate": 90.0, "scale": 0.25, "shear": 0.25}
DOF_1D = ("translate", "scale")


def parse_dof(text: str, input_shape) -> dict[str, float]:
    """'translate' or 'translate:6,rotate:20,scale,shear' -> bounds (translate in pixels)."""
    size = input_shape[-1]
    dof: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition(":")
        if name == "all":
            dof.update({k: v for k, v in parse_dof("translate,rotate,scale,shear", input_shape).items()})
            continue
        if name not in DEFAULT_BOUNDS:
            raise UserError(f"unknown affine degree of freedom '{name}'; choose from: "
                            f"{', '.join(DEFAULT_BOUNDS)} (or all)")
        try:
            bound = float(value) if value else DEFAULT_BOUNDS[name] * (size if name == "translate" else 1)
        except ValueError:
            raise UserError(f"--affine {part}: '{value}' is not a number") from None
        if not math.isfinite(bound) or bound <= 0:  # nan passed `<= 0` and was later "loss became nan"
            raise UserError(f"--affine {part}: the bound must be a positive finite number")
        dof[name] = bound
    if not dof:
        raise UserError("--affine needs at least one degree of freedom, e.g. 'translate'")
    if len(input_shape) == 2 and set(dof) - set(DOF_1D):
        raise UserError(f"1D signals only take {' and '.join(DOF_1D)}; got {', '.join(dof)}")
    return dof


@register_augmentor("affine")
class AffineAugmentor(HardAugmentor):
    def __init__(self, input_shape, dof: dict[str, float] | str = "translate", noise_dim: int = 16,
                 hidden: int = 64, image_input: bool = False, spread: float = 1.0, candidates: int = 1,
                 share: float = 0.75):
        super().__init__(input_shape, spread, candidates=candidates, share=share)
        self.dof = parse_dof(dof, input_shape) if isinstance(dof, str) else dict(dof)
        self.noise_dim, self.image_input = noise_dim, image_input
        thumb = 8 if len(input_shape) == 3 else 16  # image summary size fed to the MLP (if image_input)
        self.thumb = thumb
        in_dim = noise_dim + (input_shape[0] * thumb ** (len(input_shape) - 1) if image_input else 0)
        n_out = sum(2 if name == "translate" and len(input_shape) == 3 else 1 for name in self.dof)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_out))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def sample(self, x: Tensor) -> dict[str, Tensor]:
        """Per-sample transform parameters in natural units (pixels, degrees, fractions)."""
        z = self.noise(x.shape[0], self.noise_dim, x)
        if self.image_input:
            pool = F.adaptive_avg_pool2d if x.dim() == 4 else F.adaptive_avg_pool1d
            z = torch.cat([z, pool(x, self.thumb).flatten(1)], 1)
        value = torch.sin(self.explore(self.net(z)))
        params, i = {}, 0
        for name, bound in self.dof.items():
            keys = (["tx", "ty"] if x.dim() == 4 else ["tx"]) if name == "translate" else [name]
            for key in keys:
                params[key] = bound * value[:, i]
                i += 1
        return params

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        params = self.sample(x)
        return warp(x, params), params


def warp(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Apply per-sample affine transforms (content moves by +tx, +ty pixels) to N x C x H x W or N x 1 x L."""
    one_d = x.dim() == 3
    img = x.unsqueeze(2) if one_d else x
    n, _, h, w = img.shape
    zero = x.new_zeros(n)
    a = params.get("rotate", zero) * (math.pi / 180)
    s = 1 + params.get("scale", zero)
    k = params.get("shear", zero)
    cos, sin = torch.cos(a), torch.sin(a)
    # forward map in normalised coordinates: rotation @ shear @ scale, then translation
    m = torch.stack([torch.stack([s * cos, s * (k * cos - sin)], -1),
                     torch.stack([s * sin, s * (k * sin + cos)], -1)], -2)
    t = torch.stack([2 * params.get("tx", zero) / w, 2 * params.get("ty", zero) / h], -1)
    inv = torch.linalg.inv(m)  # grid_sample wants where each output pixel comes from
    theta = torch.cat([inv, -(inv @ t.unsqueeze(-1))], -1)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    # images: black outside (digits on a black canvas); 1D signals: repeat the ends (no zero background)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border" if one_d else "zeros",
                        align_corners=False)
    return out.squeeze(2) if one_d else out
