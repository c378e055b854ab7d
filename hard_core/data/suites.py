"""Out-of-domain test suites: the test split, each image perturbed once by a seeded random transform.

>>> suites = make_suites(ds, parse_suites("shift:6,rotation:30"), seed=0)   # {"shift": Split, ...}

Meaning of each suite's strength (2D images; fill outside the image is black, results clipped to [0, 1]):
- shift: s = max pixels per axis; each image moves by integers dx, dy drawn uniformly from [-s, s].
- rotation: r = max degrees; angle uniform in [-r, r] about the centre (bilinear).
- scale: s; zoom factor uniform in [1 - s, 1 + s] about the centre (bilinear).
- noise: sigma of additive gaussian noise.
- blur: sigma of a gaussian blur (same for every image; kernel 2*ceil(3 sigma)+1).
- contrast: c; factor f uniform in [c, 1]; the image becomes f*x + (1-f)*mean(x) (lower c = harder).
- elastic: alpha, the displacement strength of torchvision's ElasticTransform (sigma 5, its default).
- polarity: p = share of images inverted, x -> 1 - x on the whole canvas (1 = all of them).
- thickness: r = pixels every stroke is thickened by (grey dilation by a (2r+1)-square).
1D signals (N x 1 x L) have one suite:
- shift: each signal moves along L by an integer uniform in [-s, s]; the ends are replicate-padded.

Parameters are drawn from a torch.Generator seeded by (seed, suite name), so a suite is identical
for a given seed whatever other suites are asked for. Float test sets give float suites; uint8 test
sets (large torchvision sets) give uint8 suites, rounded, to keep memory 4x lower.
"""
from __future__ import annotations

import math
import zlib

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from ..errors import UserError
from .nuisance import invert, shift, thicken
from .types import Dataset, Split

SUITES_2D = ("shift", "rotation", "scale", "noise", "blur", "contrast", "elastic", "polarity", "thickness")
SUITES_1D = ("shift",)
ELASTIC_SIGMA = 5.0  # smoothness of the elastic displacement field, torchvision's default
CHUNK = 1000  # images converted to float at a time


def default_suites(dataset: Dataset) -> dict[str, float]:
    """Every suite at a moderate strength for this data set.

    shift: the canvas padding per side when images sit on a larger canvas ((40-28)//2 = 6 for mnist5k
    at canvas 40, at least 2), else round(0.12 * H) (3 for 28x28, 4 for 32x32). 1D: {"shift": 8}.

    >>> default_suites(load_dataset("mnist5k", canvas=40))["shift"]    # 6
    """
    if dataset.is_1d:
        return {"shift": 8}  # a fifth of MNIST-1D's 40 samples
    h = dataset.input_shape[-2]
    pad = (dataset.info.get("canvas", h) - dataset.info.get("native", h)) // 2
    shift = max(2, pad) if pad > 0 else round(0.12 * h)
    return {"shift": shift, "rotation": 30, "scale": 0.25, "noise": 0.2, "blur": 1.0, "contrast": 0.4,
            "elastic": 30, "polarity": 1.0, "thickness": 1}


# suite -> (lowest, highest) allowed strength
LIMITS = {"shift": (0, 1000), "rotation": (0, 180), "scale": (0, 0.99), "noise": (0, 10),
          "blur": (0.01, 100), "contrast": (0, 1), "elastic": (0, 10000), "polarity": (0, 1), "thickness": (1, 5)}
INTEGER = ("shift", "thickness")


def parse_suites(text: str | None, defaults: dict[str, float] | None = None) -> dict[str, float]:
    """Parse "name:value,..." ("none" or "" = no suites). A bare name takes its value from `defaults`.

    >>> parse_suites("shift:6, rotation:30")    # {'shift': 6.0, 'rotation': 30.0}
    """
    text = (text or "").strip()
    if text.lower() == "none" or not text:
        return {}
    spec: dict[str, float] = {}
    for item in text.split(","):
        name, _, value = (s.strip() for s in item.partition(":"))
        name = name.lower()
        if name not in LIMITS:
            raise UserError(f"unknown suite '{name}' in '{text}'; known: {', '.join(SUITES_2D)}")
        if name in spec:
            raise UserError(f"suite '{name}' given twice in '{text}'")
        if not value:
            if defaults is None or name not in defaults:
                raise UserError(f"suite '{name}' needs a strength, e.g. '{name}:{_example(name)}'")
            spec[name] = float(defaults[name])
            continue
        try:
            spec[name] = float(value)
        except ValueError:
            raise UserError(f"suite '{name}': '{value}' is not a number") from None
        check_suite(name, spec[name])
    return spec


def check_suite(name: str, value: float) -> None:
    """UserError unless `name` is a known suite and `value` a valid strength for it."""
    if name not in LIMITS:
        raise UserError(f"unknown suite '{name}'; known: {', '.join(SUITES_2D)}")
    lo, hi = LIMITS[name]
    if not (lo <= value <= hi) or (name in INTEGER and value != int(value)):
        kind = "an integer" if name in INTEGER else "a number"
        raise UserError(f"suite '{name}': strength must be {kind} in [{lo}, {hi}], got {value}")


def _example(name: str) -> str:
    return {"shift": "6", "rotation": "30", "scale": "0.25", "noise": "0.2", "blur": "1",
            "contrast": "0.4", "elastic": "30", "polarity": "1", "thickness": "1"}[name]


def _generator(seed: int, name: str) -> torch.Generator:
    """Independent stream per (seed, suite): crc32 is stable across runs, unlike hash()."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo


def _affine(x: Tensor, angles: Tensor, scales: Tensor) -> Tensor:
    """Rotate (degrees) and zoom each image about its centre: bilinear, black outside."""
    return torch.stack([F.affine(img, angle=float(a), translate=[0, 0], scale=float(s), shear=[0.0, 0.0],
                                 interpolation=F.InterpolationMode.BILINEAR, fill=0.0)
                        for img, a, s in zip(x, angles, scales)])


def _elastic(x: Tensor, g: torch.Generator, alpha: float) -> Tensor:
    """torchvision ElasticTransform's displacement (uniform noise, blurred, times alpha / side), seeded."""
    n, _, h, w = x.shape
    k = min(int(8 * ELASTIC_SIGMA + 1) | 1, 2 * min(h, w) - 1)  # odd, and reflect padding needs < side
    field = torch.rand(n, 2, h, w, generator=g) * 2 - 1
    # separable blur (a k x 1 then a 1 x k pass) equals the k x k blur and is much faster
    field = F.gaussian_blur(F.gaussian_blur(field, [k, 1], [ELASTIC_SIGMA] * 2), [1, k], [ELASTIC_SIGMA] * 2)
    field = field * torch.tensor([alpha / w, alpha / h]).view(1, 2, 1, 1)
    disp = field.permute(0, 2, 3, 1)  # N x H x W x 2
    return torch.stack([F.elastic(img, d[None], fill=0.0) for img, d in zip(x, disp)])


def _perturb_2d(name: str, v: float, x: Tensor, g: torch.Generator) -> Tensor:
    n = x.shape[0]
    if name == "shift":
        s = int(v)
        dx, dy = torch.randint(-s, s + 1, (n, 2), generator=g).unbind(1)
        return shift(x, dx=dx, dy=dy)
    if name == "rotation":
        return _affine(x, _uniform(g, n, -v, v), torch.ones(n))
    if name == "scale":
        return _affine(x, torch.zeros(n), _uniform(g, n, 1 - v, 1 + v))
    if name == "noise":
        return x + v * torch.randn(x.shape, generator=g)
    if name == "blur":
        k = 2 * math.ceil(3 * v) + 1
        k = min(k, 2 * min(x.shape[-2:]) - 1)
        return F.gaussian_blur(x, [k, k], [v, v])
    if name == "contrast":
        f = _uniform(g, n, v, 1).float().view(n, 1, 1, 1)
        gray = F.rgb_to_grayscale(x) if x.shape[1] == 3 else x  # the mean torchvision's adjust_contrast uses
        return f * x + (1 - f) * gray.mean((1, 2, 3), keepdim=True)
    if name == "polarity":
        return invert(x, torch.rand(n, generator=g) < v)
    if name == "thickness":
        return thicken(x, int(v))
    return _elastic(x, g, v)  # "elastic": the last one check_suite lets through


def _shift_1d(x: Tensor, g: torch.Generator, s: int) -> Tensor:
    return shift(x, dx=torch.randint(-s, s + 1, (x.shape[0], 1), generator=g)[:, 0])  # ends replicated


def check_suites(dataset: Dataset, spec: dict[str, float]) -> None:
    """A UserError for a suite that does not exist, has a bad strength, or does not fit this data."""
    for name, value in spec.items():
        check_suite(name, value)
        if dataset.is_1d and name not in SUITES_1D:
            raise UserError(f"suite '{name}' is for images; 1D signals have only: {', '.join(SUITES_1D)}")


def make_suites(dataset: Dataset, spec: dict[str, float] | None = None, seed: int = 0) -> dict[str, Split]:
    """One Split per suite in `spec` (default: `default_suites`), same size and labels as the test split.

    >>> make_suites(ds, {"shift": 6}, seed=0)["shift"].x.shape == ds.test.x.shape    # True
    """
    spec = default_suites(dataset) if spec is None else spec
    check_suites(dataset, spec)
    test = dataset.test
    out: dict[str, Split] = {}
    for name, value in spec.items():
        g = _generator(seed, name)
        parts = []
        for i in range(0, len(test), CHUNK):  # fixed chunks: the same seed gives the same draws
            x, _ = test.get(slice(i, i + CHUNK))
            x = _shift_1d(x, g, int(value)) if dataset.is_1d else _perturb_2d(name, float(value), x, g)
            x = x.clamp(0, 1)
            parts.append(x.mul(255).round_().to(torch.uint8) if test.x.dtype == torch.uint8 else x)
        out[name] = Split(torch.cat(parts), test.y.clone())
    return out
