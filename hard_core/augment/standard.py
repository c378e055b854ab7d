"""Standard (fixed) data augmentations for KD, one small class each, on batches of float images in [0, 1].

Every augmentation maps `(x, y)` to `(x_aug, y_aug)`: `x` is N x C x H x W (or N x 1 x L for 1D signals),
`y` is N x K soft targets (integer labels of length N are one-hot encoded for convenience). Nothing is moved
off `x.device`; random parameters are drawn from torch's global CPU generator (so `torch.manual_seed` makes
a run reproducible on any device) and only small index tensors travel to the device.

>>> aug = Shift(num_classes=10, max_shift=2)
>>> x_aug, y_aug = aug(torch.rand(8, 1, 28, 28), torch.eye(10)[:8])
>>> x_aug.shape
torch.Size([8, 1, 28, 28])
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from ..data.nuisance import invert, shift, thicken_each
from ..errors import UserError
from .hard.affine import warp
from .registry import register_augment


class Augment:
    """Base class: `aug(x, y, teacher=None, student=None) -> (x_aug, y_aug)`, same number of samples.

    Class attributes tell callers what an augmentation needs: `needs_models` (scores candidates with the
    teacher/student), `images_only` (raises `UserError` on 1D data), `mixes_labels` (the output labels
    depend on `y`, so `y` must be meaningful; the others return `y` unchanged).
    """

    name: str = ""
    needs_models: bool = False
    images_only: bool = False
    mixes_labels: bool = False

    def __init__(self, *, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes

    def __call__(self, x: Tensor, y: Tensor, teacher: nn.Module | None = None,
                 student: nn.Module | None = None) -> tuple[Tensor, Tensor]:
        y = self._check(x, y)
        return self.apply(x, y, teacher=teacher, student=student)

    def apply(self, x: Tensor, y: Tensor, *, teacher: nn.Module | None,
              student: nn.Module | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _check(self, x: Tensor, y: Tensor) -> Tensor:
        """Validate shapes; return `y` as N x K float soft labels."""
        if x.dim() not in (3, 4) or not x.is_floating_point():
            raise ValueError(f"{self.name}: x must be a float N x C x H x W or N x 1 x L batch, "
                             f"got {x.dtype} of shape {tuple(x.shape)}")
        if self.images_only and x.dim() == 3:
            raise UserError(f"{self.name} needs images; this dataset is 1D")
        if y.dim() == 1 and not y.is_floating_point():
            y = nn.functional.one_hot(y, self.num_classes).to(x.dtype)
        if y.shape != (x.shape[0], self.num_classes):
            raise ValueError(f"{self.name}: y must be {x.shape[0]} x {self.num_classes} soft labels "
                             f"(or {x.shape[0]} integer labels), got shape {tuple(y.shape)}")
        return y

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@register_augment("none", strength=0)
class NoAugment(Augment):
    """Identity: returns the very same tensors."""

    name = "none"

    def apply(self, x, y, *, teacher, student):
        return x, y


@register_augment("shift", strength=10)
class Shift(Augment):
    """Random integer translation per sample, uniform in [-max_shift, max_shift] on each axis.

    The move itself is `data.nuisance.shift` (the shift suite's and the probes' too): images get a zero
    fill (the background of the digit canvases is black); 1D signals (N x 1 x L) shift along L and
    *replicate the end values*. Output pixel (i, j) of sample n is input pixel (i - dy[n], j - dx[n]):
    content moves down/right for positive shifts. Vectorised as one gather; on a 128 x 1 x 40 x 40 batch
    (1 CPU thread) this took ~0.8 ms versus ~8.5 ms for a per-sample loop over
    `v2.functional.affine(translate=[dx, dy])`, whose output it reproduces exactly.
    Sampling (`make_params`) is separate from `apply_params` so one draw can be replayed and shown.
    """

    name = "shift"

    def __init__(self, *, num_classes: int, max_shift: int = 4):
        super().__init__(num_classes=num_classes)
        if int(max_shift) != max_shift or max_shift < 0:
            raise ValueError(f"max_shift must be an integer >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def make_params(self, x: Tensor) -> dict[str, Tensor]:
        """{'dx': N} (and 'dy': N for images), int64 on CPU."""
        m, n = self.max_shift, x.shape[0]
        params = {"dx": torch.randint(-m, m + 1, (n,))}
        if x.dim() == 4:
            params["dy"] = torch.randint(-m, m + 1, (n,))
        return params

    @staticmethod
    def apply_params(x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return shift(x, dx=params["dx"], dy=params["dy"] if x.dim() == 4 else 0)

    def apply(self, x, y, *, teacher, student):
        return self.apply_params(x, self.make_params(x)), y


@register_augment("rotation", strength=20)
class Rotation(Augment):
    """Each image rotated about its centre by an angle uniform in [-max_degrees, max_degrees] (bilinear,
    black outside): the rotation world's nuisance. One batched `affine_grid` warp (HARD-affine's own):
    on a 128 x 1 x 40 x 40 batch it took 29 ms against 212 ms for v2.RandomRotation called per sample
    (measured here, one thread, a loaded machine)."""

    name = "rotation"
    images_only = True

    def __init__(self, *, num_classes: int, max_degrees: float = 45.0):
        super().__init__(num_classes=num_classes)
        self.max_degrees = float(max_degrees)

    def apply(self, x, y, *, teacher, student):
        angles = (torch.rand(x.shape[0]) * 2 - 1) * self.max_degrees
        return warp(x, {"rotate": angles.to(x.device, x.dtype)}), y


@register_augment("polarity", strength=30)
class Polarity(Augment):
    """Each image inverted (x -> 1 - x) with probability `p`: the polarity world's nuisance."""

    name = "polarity"
    images_only = True

    def __init__(self, *, num_classes: int, p: float = 0.5):
        super().__init__(num_classes=num_classes)
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def apply(self, x, y, *, teacher, student):
        return invert(x, torch.rand(x.shape[0]) < self.p), y


@register_augment("thickness", strength=40)
class Thickness(Augment):
    """Strokes thinned, kept or thickened by up to `radius` pixels, uniformly per image: the thickness
    world's nuisance (grey erosion / dilation, `data.nuisance.thicken`)."""

    name = "thickness"
    images_only = True

    def __init__(self, *, num_classes: int, radius: int = 1):
        super().__init__(num_classes=num_classes)
        if int(radius) != radius or radius < 0:
            raise ValueError(f"radius must be an integer >= 0, got {radius}")
        self.radius = int(radius)

    def apply(self, x, y, *, teacher, student):
        return thicken_each(x, torch.randint(-self.radius, self.radius + 1, (x.shape[0],))), y


# Per-sample versus shared parameters. A v2 transform called on a batch draws ONE set of random parameters
# for all of it; KD profits from per-sample diversity. Measured on a 128 x 1 x 40 x 40 float batch, one CPU
# thread, ms per batch (whole batch at once / one call per sample / groups of 8):
#   flip-crop 0.2 / 4.4 / 0.6,  randaugment 2.8 / 12.6 / 2.2,  autoaugment 0.5 / 10.0 / 1.9,
#   cutout 0.07 / 4.2 / 0.6.
# A KD step of the toy (CNN teacher, MLP student, batch 128) costs ~47 ms on 2 cores, so per-sample costs
# 10-25% extra at worst: the default (group_size=1) pays it for full diversity.
# PerSample(..., group_size=8) is the cheaper choice for large batches.
class PerSample(Augment):
    """Applies a torchvision v2 transform with fresh random parameters per sample (or per group).

    `make(h, w)` builds the v2 transform for the image size (built once per size and cached). v2 kernels
    accept float images in [0, 1] directly (including the auto-augment ops, whose docs ask for uint8:
    posterize/solarize/equalize have float paths), so no uint8 round trip and no quantisation; 1-channel
    images work (saturation on 1 channel is the identity).
    """

    images_only = True

    def __init__(self, name: str, make: Callable[[int, int], v2.Transform], *, num_classes: int,
                 group_size: int = 1, channels: tuple[int, ...] | None = None):
        super().__init__(num_classes=num_classes)
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.name, self.make, self.group_size, self.channels = name, make, group_size, channels
        self._cache: dict[tuple[int, int], v2.Transform] = {}

    def transform_for(self, h: int, w: int) -> v2.Transform:
        if (h, w) not in self._cache:
            self._cache[(h, w)] = self.make(h, w)
        return self._cache[(h, w)]

    def apply(self, x, y, *, teacher, student):
        if self.channels is not None and x.shape[1] not in self.channels:
            raise UserError(f"{self.name} works on images with {' or '.join(map(str, self.channels))} "
                            f"channels, not {x.shape[1]}")
        tf = self.transform_for(*x.shape[-2:])
        return torch.cat([tf(chunk) for chunk in x.split(self.group_size)]), y


def _flip_crop(h: int, w: int) -> v2.Transform:
    # Pad ~1/8 of the side (4 px on 32x32 as in the CIFAR recipe, 5 on 40x40, 3 on 28x28) and fill with
    # zeros: the digit canvases have a black background, and reflect padding would copy strokes into view.
    pad = max(1, min(h, w) // 8)
    return v2.Compose([v2.RandomCrop((h, w), padding=pad, fill=0), v2.RandomHorizontalFlip()])


def _cutout(h: int, w: int) -> v2.Transform:
    # Always erase (p=1) one zero-valued rectangle of 2-25% of the area: Cutout's 16x16 patch on 32x32
    # images is 25%; RandomErasing's default upper bound of 33% erases most of a small digit.
    return v2.RandomErasing(p=1.0, scale=(0.02, 0.25), value=0.0)


@register_augment("flip-crop", strength=50)
def flip_crop(*, num_classes: int) -> PerSample:
    return PerSample("flip-crop", _flip_crop, num_classes=num_classes)


# torchvision's defaults for the two policies: RandAugment 2 ops at magnitude 9 of 31, AutoAugment's ImageNet
# policy; nearest interpolation, 0 fill. Their colour ops only exist for grey or RGB images.
@register_augment("randaugment", strength=60)
def randaugment(*, num_classes: int) -> PerSample:
    return PerSample("randaugment", lambda h, w: v2.RandAugment(), num_classes=num_classes, channels=(1, 3))


@register_augment("autoaugment", strength=70)
def autoaugment(*, num_classes: int) -> PerSample:
    return PerSample("autoaugment", lambda h, w: v2.AutoAugment(), num_classes=num_classes, channels=(1, 3))


@register_augment("cutout", strength=80)
def cutout(*, num_classes: int) -> PerSample:
    return PerSample("cutout", _cutout, num_classes=num_classes)


def _pairing(n: int) -> Tensor:
    """Random permutation `perm`; v2.MixUp/CutMix pair position j with j-1, so shuffle first (CPU)."""
    return torch.randperm(n)


class _MixBase(Augment):
    """Shared bits of MixUp and CutMix: Beta(alpha, alpha) lambda, one random pairing per call.

    The output keeps the input order: sample i is mixed with a random partner (never itself when N > 1).
    Soft labels: v2.MixUp/CutMix accept N x K probability labels and mix them with the same lambda, so
    soft targets pass straight through (no argmax to integers needed).
    """

    mixes_labels = True

    def __init__(self, *, num_classes: int, alpha: float = 1.0):
        super().__init__(num_classes=num_classes)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def _via_v2(self, tf: v2.Transform, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        perm = _pairing(x.shape[0]).to(x.device)
        xp, yp = tf(x[perm], y[perm])
        inv = torch.argsort(perm)
        return xp[inv], yp[inv]


@register_augment("mixup", strength=90)
class MixUp(_MixBase):
    """x_i' = lam x_i + (1 - lam) x_partner, labels likewise; one lam per batch (torchvision v2.MixUp)."""

    name = "mixup"

    def __init__(self, *, num_classes: int, alpha: float = 1.0):
        super().__init__(num_classes=num_classes, alpha=alpha)
        self._tf = v2.MixUp(alpha=self.alpha)  # num_classes=None: labels arrive as N x K probabilities

    def apply(self, x, y, *, teacher, student):
        # v2.MixUp checks for 4 dims; a 1D batch is viewed as N x 1 x 1 x L (mixing is pointwise anyway).
        x4 = x.unsqueeze(2) if x.dim() == 3 else x
        xo, yo = self._via_v2(self._tf, x4, y)
        return xo.view_as(x), yo


@register_augment("cutmix", strength=100)
class CutMix(_MixBase):
    """Paste a box of a partner image; label weight of the partner = box area fraction.

    Images use torchvision v2.CutMix (one box per batch). 1D signals paste a segment instead: v2.CutMix on
    a 1 x L "image" always gets an empty box (its half-height int(r * 1) is 0), so the segment version is
    written here with the same recipe (centre uniform, half-length 0.5 (1 - lam) L, clipped to the
    signal, label lam from the clipped length).
    """

    name = "cutmix"

    def __init__(self, *, num_classes: int, alpha: float = 1.0):
        super().__init__(num_classes=num_classes, alpha=alpha)
        self._tf = v2.CutMix(alpha=self.alpha)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))

    def apply(self, x, y, *, teacher, student):
        if x.dim() == 4:
            return self._via_v2(self._tf, x, y)
        n, length = x.shape[0], x.shape[-1]
        perm = _pairing(n)
        partner = torch.empty_like(perm)
        partner[perm] = perm.roll(1)  # same pairing rule as v2: position j takes from position j - 1
        partner = partner.to(x.device)
        lam = float(self._beta.sample())
        centre, half = int(torch.randint(length, ())), int(0.5 * (1.0 - lam) * length)
        a, b = max(centre - half, 0), min(centre + half, length)
        lam = 1.0 - (b - a) / length
        out = x.clone()
        out[..., a:b] = x[partner][..., a:b]
        return out, lam * y + (1.0 - lam) * y[partner]
