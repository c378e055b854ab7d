"""The base of HARD's learned augmentors (Nix et al. 2023): an `nn.Module` that maps a batch to a harder
batch plus the per-sample parameters it chose (for display).

Every family draws its per-sample parameters from a learned distribution: a network's output (zero at
init) plus a learned `spread` times fresh standard normal noise, pushed through a bounded periodic map
(sin or cos) into the family's range. With `spread = 0` the augmentor is exactly the identity (a tested
property). It starts wide (`spread` of order 1) because the identity is a poor start for the game: the
student was trained around it, so for smooth nuisances the disagreement has a local minimum there and
gradient ascent stays put; samples spread over the range explore, and the game keeps the hard ones.
With `candidates` k > 1 the training step draws k augmentations per image and keeps the one the game
scores highest (`train.step`): per-sample restarts, for nuisances that sit behind a barrier.

>>> aug = build_augmentor("affine", input_shape=(1, 40, 40))
>>> x_aug, params = aug(torch.rand(8, 1, 40, 40))
>>> params["tx"].shape
torch.Size([8])
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ...errors import UserError

_AUGMENTORS: dict[str, Callable[..., "HardAugmentor"]] = {}


def register_augmentor(name: str):
    def add(cls):
        _AUGMENTORS[name] = cls
        return cls

    return add


def list_augmentors() -> list[str]:
    return sorted(_AUGMENTORS)


class HardAugmentor(nn.Module):
    """`forward(x) -> (x_aug, params)`; `x`, `x_aug` float in [0, 1] of one shape, `params` a dict of
    per-sample tensors (first dimension N) describing what was done to each sample."""

    def __init__(self, input_shape, spread: float = 1.0, max_spread: float = 4.0, candidates: int = 1,
                 share: float = 0.5):
        super().__init__()
        if not 0 <= spread <= max_spread:
            raise ValueError(f"spread must be in [0, {max_spread}], got {spread}")
        if candidates < 1 or not 0 < share <= 1:
            raise ValueError(f"need candidates >= 1 and share in (0, 1]; got {candidates}, {share}")
        self.input_shape = tuple(input_shape)
        self.max_spread = float(max_spread)
        self.spread = nn.Parameter(torch.tensor(float(spread)))  # learned exploration width
        self.candidates = int(candidates)  # draws per image, of which the training step keeps the hardest
        self.share = float(share)  # the part of each student batch this augmentor augments (the rest stays clean)
        self.spec: dict = {}  # set by build_augmentor: rebuilds the augmentor from a checkpoint's JSON

    def explore(self, raw: Tensor) -> Tensor:
        """`raw` plus `spread` times fresh standard normal noise of the same shape (reparametrised, so the
        game's gradient reaches the spread too)."""
        return raw + self.spread * torch.randn_like(raw)

    def noise(self, n: int, dim: int, like: Tensor) -> Tensor:
        """The augmentor's source of randomness: standard normal noise on x's device."""
        return torch.randn(n, dim, device=like.device, dtype=like.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def project_(self) -> None:
        """Called after every augmentor update, to put constrained parameters back in range."""
        self.spread.clamp_(0.0, self.max_spread)


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def reverse_grad(x: Tensor) -> Tensor:
    """Identity forward, negated gradient backward: what the student descends, the augmentor ascends."""
    return _ReverseGrad.apply(x)


def build_augmentor(name: str, *, input_shape, **options) -> HardAugmentor:
    """A registered augmentor; `options` are the augmentor's own keyword arguments."""
    if name not in _AUGMENTORS:
        raise UserError(f"unknown HARD augmentor '{name}'; choose from: none, {', '.join(list_augmentors())}")
    augmentor = _AUGMENTORS[name](input_shape=input_shape, **options)
    augmentor.spec = {"augmentor": name, "input_shape": list(input_shape), **options}
    return augmentor
