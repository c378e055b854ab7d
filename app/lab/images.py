"""Composed images for the lab's pages (Streamlit-free): one PIL image per view, never many small ones.

>>> image_grid(snapshot["augmented"])              # N x C x H x W -> one upscaled grid
>>> gallery(snapshot)                              # clean, augmented below each, then |x̃ - x|
>>> overlay(snapshot["augmented"], snapshot["disagreement"])   # where the disagreement is, with a colour bar
"""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

PEAK_QUANTILE = 0.99  # heat at or above this quantile of the shown maps gets the full colour
TOP_SHARE = 0.10  # overlays colour the pixels in the top 10% of the (smoothed) disagreement, the rest stays grey
SMOOTH_SIGMA = 1.0  # pixels: gradient maps are speckle pixel by pixel; a light blur shows the regions
PAD_VALUE = 0.45  # grey separators: the digit canvases are black, so a black gap would vanish
HEAT_START = 0.25  # overlays start at inferno's purple: its black end would vanish on the black canvas
BAR_HEIGHT = 34  # pixels of the colour bar strip under a heat image (bar and one line of labels)

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


def rows_of(*batches: Tensor, n: int = 8, per_row: int = 8) -> Tensor:
    """Batches (same shape) arranged in row blocks: a row of the first batch, the matching images of the
    next batch directly below, and so on; then the next block. Returns the stacked batch for `image_grid`."""
    n = min([n] + [len(b) for b in batches])
    if n < 1:
        raise ValueError("need at least one image in every row")
    batches = [b[:n] for b in batches]
    rows = []
    for start in range(0, n, per_row):
        block = [b[start:start + per_row] for b in batches]
        if len(block[0]) < per_row and start > 0:  # keep columns aligned in a short last block
            fill = torch.full((per_row - len(block[0]), *batches[0].shape[1:]), PAD_VALUE)
            block = [torch.cat([b, fill]) for b in block]
        rows += block
    return torch.cat(rows)


def pairs(clean: Tensor, augmented: Tensor, n: int = 8, per_row: int = 8) -> Tensor:
    """Clean and augmented images in row blocks: clean images, the augmented version of each below."""
    return rows_of(to_unit(clean), to_unit(augmented), n=n, per_row=per_row)


def gallery(snapshot: dict, n: int = 8, per_row: int = 8, scale: int = 3, change: bool = True) -> Image.Image:
    """What the student saw: the first `n` clean images of a snapshot on top, each augmented version
    directly below it, and (with `change`) below that |x̃ - x| in colour (black: untouched, bright: a full
    change of intensity), with its colour bar. More blocks of rows when n > per_row."""
    clean, augmented = snapshot["clean"], snapshot["augmented"]
    if clean.dim() != 4:
        raise ValueError("gallery draws images; plot 1D signals with figures.signals_figure")
    nrow = min(per_row, n, len(clean))
    if not change:
        return image_grid(pairs(clean, augmented, n, per_row), nrow=nrow, scale=scale)
    c, a = to_unit(clean).expand(-1, 3, -1, -1), to_unit(augmented).expand(-1, 3, -1, -1)
    diff = colormap((a - c).abs().mean(1)).permute(0, 3, 1, 2)  # N x 3 x H x W
    grid = image_grid(rows_of(c, a, diff, n=n, per_row=per_row), nrow=nrow, scale=scale)
    return with_colour_bar(grid, "bottom row: |augmented - clean|", "0: unchanged", "1: black to white")


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def with_colour_bar(img: Image.Image, title: str, low: str, high: str, start: float = 0.0) -> Image.Image:
    """`img` with the inferno colour bar (from `start` of the map to its bright end) under it: `low` at
    its dark end, `high` at its bright end and `title` (what the colour measures, with units) between.
    Labels in ASCII: Pillow's built-in font has no ∂, − or x̃."""
    width = img.width
    bar_w = max(60, min(width - 8, 360))
    out = Image.new("RGB", (width, img.height + BAR_HEIGHT), (255, 255, 255))
    out.paste(img, (0, 0))
    ramp = (colormap(torch.linspace(start, 1, bar_w)) * 255).round().to(torch.uint8)  # bar_w x 3
    strip = ramp.unsqueeze(0).expand(10, -1, -1).contiguous().numpy()
    left = (width - bar_w) // 2
    out.paste(Image.fromarray(strip), (left, img.height + 4))
    draw, font = ImageDraw.Draw(out), _font()
    y = img.height + 16
    draw.text((left, y), low, fill=(40, 40, 40), font=font)
    draw.text((left + bar_w, y), high, fill=(40, 40, 40), font=font, anchor="ra")
    draw.text((left + bar_w // 2, y), title, fill=(0, 0, 0), font=font, anchor="ma")
    return out


def colormap(v: Tensor) -> Tensor:
    """Values in [0, 1] (any shape S) -> RGB colours (S x 3) of the inferno lookup table."""
    pos = v.clamp(0, 1) * (len(INFERNO) - 1)
    lo = pos.floor().long().clamp(max=len(INFERNO) - 2)
    frac = (pos - lo).unsqueeze(-1)
    return INFERNO[lo] * (1 - frac) + INFERNO[lo + 1] * frac


def evidence(heat: Tensor) -> tuple[Tensor, float, float]:
    """Where the evidence is in a batch of disagreement maps (N x H x W): the |heat| smoothed over
    SMOOTH_SIGMA pixels, the level of its top TOP_SHARE of pixels (below it stays grey) and its
    PEAK_QUANTILE (full colour), both over the whole batch, so the images share one scale."""
    h = heat.detach().cpu().float().abs().nan_to_num(0.0).unsqueeze(1)
    if SMOOTH_SIGMA > 0 and min(h.shape[-2:]) >= 5:
        h = TF.gaussian_blur(h, kernel_size=[5, 5], sigma=[SMOOTH_SIGMA, SMOOTH_SIGMA])
    h = h.squeeze(1)
    flat = h.flatten()
    if flat.numel() > 1_000_000:  # quantile's limit; a strided sample is as good for a colour scale
        flat = flat[:: flat.numel() // 1_000_000 + 1]
    floor = float(flat.quantile(1 - TOP_SHARE))
    peak = max(float(flat.quantile(PEAK_QUANTILE)), floor * 1.001, 1e-12)
    return h, floor, peak


def heat_rgb(images: Tensor, heat: Tensor, alpha: float = 0.75) -> tuple[Tensor, float, float]:
    """N x 3 x H x W: the images in grey with the top TOP_SHARE of the smoothed `heat` (N x H x W) painted
    over them, from the floor of that share (faint purple) to the batch's PEAK_QUANTILE (pale yellow);
    the rest stays plain grey. Also returns that floor and peak (the colour bar's ends)."""
    x = _check_images(images)
    if heat.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"heat must be N x H x W = {(x.shape[0], *x.shape[2:])}, got {tuple(heat.shape)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, floor, peak = evidence(heat)
    level = ((h - floor) / (peak - floor)).clamp(0, 1)
    shown = (h > floor) & (h > 0)
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    colour = colormap(HEAT_START + (1 - HEAT_START) * level).permute(0, 3, 1, 2)
    weight = (alpha * (0.5 + 0.5 * level) * shown).unsqueeze(1)
    return grey * (1 - weight) + colour * weight, floor, peak


def overlay(images: Tensor, heat: Tensor, alpha: float = 0.75, nrow: int = 8, scale: int = 3,
            with_images: bool = False) -> Image.Image:
    """Where teacher and student disagree, as one grid with a colour bar: each image in grey, its pixels
    in the top TOP_SHARE of the smoothed disagreement in colour, on one scale for the whole grid.

    images: N x C x H x W (uint8 or float [0, 1], 1 or 3 channels); heat: N x H x W (e.g. a snapshot's
    "disagreement", |∂ KL(teacher ‖ student) / ∂ pixel|). with_images: put each plain image just left of
    its overlay (2N tiles).
    """
    tiles, floor, peak = heat_rgb(images, heat, alpha)
    if with_images:
        plain = _check_images(images).expand(-1, 3, -1, -1)
        tiles = torch.stack([plain, tiles], 1).flatten(0, 1)
    grid = image_grid(tiles, nrow=nrow, scale=scale)
    return with_colour_bar(grid, f"|dKL/dpixel|, top {TOP_SHARE:.0%} of pixels", f"{floor:.2g}", f">= {peak:.2g}",
                           start=HEAT_START)


OVERLAY_CAPTION = (f"Coloured: the {TOP_SHARE:.0%} of pixels where a small change would move the teacher's and "
                   "the student's outputs apart the most (|∂ KL(teacher ‖ student) / ∂ pixel|, smoothed over "
                   f"{SMOOTH_SIGMA:g} px, one scale for all the images shown); grey: the rest.")
