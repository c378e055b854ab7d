"""Composed images for the lab's pages (Streamlit-free): one PIL image per view, never many small ones.

>>> image_grid(snapshot["augmented"])              # N x C x H x W -> one upscaled grid
>>> gallery(snapshot)                              # clean on top, augmented right below each
>>> overlay(snapshot["augmented"], snapshot["disagreement"])   # disagreement heat over the images
"""
from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

PEAK_QUANTILE = 0.99  # heat at or above this quantile of an image's map gets the full colour
PAD_VALUE = 0.45  # grey separators: the digit canvases are black, so a black gap would vanish

# The "inferno" perceptual colormap at 9 anchors (black -> purple -> orange -> pale yellow); linear
# interpolation between them is close enough for a heat overlay and needs no matplotlib.
INFERNO = torch.tensor([
    [0.001, 0.000, 0.014], [0.122, 0.047, 0.282], [0.335, 0.060, 0.429], [0.533, 0.133, 0.416],
    [0.729, 0.212, 0.333], [0.891, 0.347, 0.199], [0.976, 0.550, 0.039], [0.977, 0.774, 0.176],
    [0.988, 0.998, 0.645]])


def to_unit(x: Tensor) -> Tensor:
    """Float images in [0, 1] from uint8 (0..255) or float tensors."""
    x = x.detach().cpu()
    return x.float() / 255 if x.dtype == torch.uint8 else x.float().clamp(0, 1)


def _check_images(x: Tensor) -> Tensor:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"need N x C x H x W images with 1 or 3 channels, got shape {tuple(x.shape)}")
    return to_unit(x)


def image_grid(x: Tensor, nrow: int = 8, scale: int = 3, pad: int = 2) -> Image.Image:
    """One RGB image of a batch: `nrow` images per row, each upscaled `scale` times (nearest, so pixels
    stay sharp), separated by `pad` grey pixels. x: N x C x H x W, uint8 or float in [0, 1].

    >>> image_grid(torch.zeros(16, 1, 40, 40)).size     # (8 * 120 + 9 * 2, 2 * 120 + 3 * 2)
    """
    x = _check_images(x)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    grid = make_grid(x, nrow=max(1, nrow), padding=pad, pad_value=PAD_VALUE)  # 1 channel -> 3
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array)


def pairs(clean: Tensor, augmented: Tensor, n: int = 8, per_row: int = 8) -> Tensor:
    """Clean and augmented images arranged in row blocks: a row of clean images, then the augmented
    version of each directly below, then the next block. Returns the stacked batch for `image_grid`."""
    n = min(n, len(clean), len(augmented))
    if n < 1:
        raise ValueError("need at least one clean and one augmented image")
    clean, augmented = to_unit(clean[:n]), to_unit(augmented[:n])
    rows = []
    for start in range(0, n, per_row):
        block_c, block_a = clean[start:start + per_row], augmented[start:start + per_row]
        if len(block_c) < per_row and start > 0:  # keep columns aligned in a short last block
            fill = torch.full((per_row - len(block_c), *clean.shape[1:]), PAD_VALUE)
            block_c, block_a = torch.cat([block_c, fill]), torch.cat([block_a, fill])
        rows += [block_c, block_a]
    return torch.cat(rows)


def gallery(snapshot: dict, n: int = 8, per_row: int = 8, scale: int = 3) -> Image.Image:
    """What the student saw: the first `n` clean images of a snapshot on top, each augmented version
    directly below it (more rows of pairs when n > per_row)."""
    clean, augmented = snapshot["clean"], snapshot["augmented"]
    if clean.dim() != 4:
        raise ValueError("gallery draws images; plot 1D signals with figures.signals_figure")
    return image_grid(pairs(clean, augmented, n, per_row), nrow=min(per_row, n, len(clean)), scale=scale)


def colormap(v: Tensor) -> Tensor:
    """Values in [0, 1] (any shape S) -> RGB colours (S x 3) of the inferno lookup table."""
    pos = v.clamp(0, 1) * (len(INFERNO) - 1)
    lo = pos.floor().long().clamp(max=len(INFERNO) - 2)
    frac = (pos - lo).unsqueeze(-1)
    return INFERNO[lo] * (1 - frac) + INFERNO[lo + 1] * frac


def heat_rgb(images: Tensor, heat: Tensor, alpha: float = 0.6) -> Tensor:
    """N x 3 x H x W: the images in grey with `heat` (N x H x W, normalised per image to its maximum)
    painted over them in colour, opaque in proportion to the heat times `alpha` (cold pixels stay grey).
    The heat is normalised per image to its 99th percentile (clipped at 1)."""
    x = _check_images(images)
    heat = heat.detach().cpu().float()
    if heat.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"heat must be N x H x W = {(x.shape[0], *x.shape[2:])}, got {tuple(heat.shape)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    # per image, relative to its 99th percentile: gradient maps have a few extreme pixels that would
    # otherwise leave everything else invisible
    peak = heat.abs().flatten(1).quantile(PEAK_QUANTILE, dim=1).clamp_min(1e-12)[:, None, None]
    h = (heat.abs() / peak).nan_to_num(0.0).clamp(0, 1)
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    colour = colormap(h).permute(0, 3, 1, 2)
    weight = (alpha * h).unsqueeze(1)
    return grey * (1 - weight) + colour * weight


def overlay(images: Tensor, heat: Tensor, alpha: float = 0.6, nrow: int = 8, scale: int = 3,
            with_images: bool = False) -> Image.Image:
    """Disagreement map as a colour heat over grey images, normalised per image, as one grid.

    images: N x C x H x W (uint8 or float [0, 1], 1 or 3 channels); heat: N x H x W (e.g. a snapshot's
    "disagreement"). Where the heat is zero the pixel is the plain grey image. with_images: put each
    plain image just left of its overlay (2N tiles).
    """
    tiles = heat_rgb(images, heat, alpha)
    if with_images:
        plain = _check_images(images).expand(-1, 3, -1, -1)
        tiles = torch.stack([plain, tiles], 1).flatten(0, 1)
    return image_grid(tiles, nrow=nrow, scale=scale)
