"""The nuisances of the worlds that torchvision has no batched op for, on float [0, 1] batches (N x C x H x W).

One implementation each, used by the worlds' OOD suites (`data.suites`), by the matching standard
augmentations (`augment.standard`: the oracle, and what the world's teacher was trained with) and, for
`shift`, `thicken` and `blend_invert`, by the invariance probes (`probes.invariance`).

>>> shift(x, dx, dy)   # content moves right by dx and down by dy whole pixels (ints, or N per sample)
>>> thicken(x, 1)      # strokes one pixel thicker (3 x 3 grey dilation); thicken(x, -1) thins them
>>> invert(x, mask)    # x -> 1 - x where mask (N booleans) is set
>>> blend_invert(x, w) # (1 - w) x + w (1 - x): polarity reached gradually (w = 1 is invert)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF


def shift(x: Tensor, dx: int | Tensor, dy: int | Tensor = 0) -> Tensor:
    """Integer translation: output pixel (i, j) of sample n is input pixel (i - dy[n], j - dx[n]), so
    content moves right and down for positive shifts. dx, dy: one int for the batch, or N integers.

    Images (N x C x H x W): zero fill, the black of the digit canvases; this is exactly torchvision's
    `affine(translate=[dx, dy])` with nearest interpolation. 1D signals (N x C x L): dx only, and the end
    values are replicated, because signals (e.g. MNIST-1D scaled to [0, 1]) have a non-zero baseline and
    a zero fill would add an artificial step. One gather for the whole batch; any dtype.
    """
    n, c, w = x.shape[0], x.shape[1], x.shape[-1]
    cols = torch.arange(w, device=x.device) - _per_sample(dx, x)  # N x W source column
    if x.dim() == 3:  # 1D: replicate the ends by clamping the source index
        if torch.as_tensor(dy).ne(0).any():
            raise ValueError("1D signals shift along their length only (dx); dy must be 0")
        return x.gather(2, cols.clamp(0, w - 1)[:, None, :].expand(n, c, w))
    h = x.shape[2]
    rows = torch.arange(h, device=x.device) - _per_sample(dy, x)  # N x H source row
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]  # N x H x W
    out = x.flatten(2).gather(2, flat.flatten(1)[:, None, :].expand(n, c, h * w)).view_as(x)
    return torch.where(valid[:, None], out, torch.zeros((), dtype=x.dtype, device=x.device))


def _per_sample(d: int | Tensor, x: Tensor) -> Tensor:
    """A shift (one int, or N integers) as an N x 1 int64 column on x's device."""
    return torch.as_tensor(d).to(x.device, torch.long).expand(x.shape[0])[:, None]


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


def blend_invert(x: Tensor, weight: float) -> Tensor:
    """Polarity as a strength: x blended toward its inversion, (1 - w) x + w (1 - x) for float [0, 1]
    batches. w = 0 returns x and w = 1 exactly `invert`'s 1 - x; at w = 0.5 every pixel is 0.5 (no contrast)."""
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return torch.lerp(x, TF.invert(x), weight)  # lerp is exact at both ends
