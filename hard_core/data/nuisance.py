"""The nuisances of the worlds that torchvision has no op for, on float [0, 1] batches (N x C x H x W).

One implementation each, used by the worlds' OOD suites (`data.suites`) and by the matching standard
augmentations (`augment.standard`: the oracle, and what the world's teacher was trained with).

>>> thicken(x, 1)      # strokes one pixel thicker (3 x 3 grey dilation); thicken(x, -1) thins them
>>> invert(x, mask)    # x -> 1 - x where mask (N booleans) is set
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF


def thicken(x: Tensor, radius: int) -> Tensor:
    """Grey-level dilation (radius > 0) or erosion (radius < 0) by a (2|r|+1)-square: thicker or thinner
    bright strokes on a dark background; radius 0 returns x."""
    if radius == 0:
        return x
    k = 2 * abs(radius) + 1
    if radius > 0:
        return F.max_pool2d(x, k, stride=1, padding=abs(radius))
    return -F.max_pool2d(-x, k, stride=1, padding=abs(radius))


def thicken_each(x: Tensor, radii: Tensor) -> Tensor:
    """`thicken` with one radius per sample (N integers)."""
    out = x.clone()
    for r in radii.unique().tolist():
        rows = (radii == r).nonzero().flatten().to(x.device)
        out[rows] = thicken(x[rows], int(r))
    return out


def invert(x: Tensor, mask: Tensor) -> Tensor:
    """Polarity: x -> 1 - x (torchvision's invert) for the samples where `mask` (N booleans) is True."""
    mask = mask.to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, TF.invert(x), x)
