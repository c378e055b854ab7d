"""The registry of the standard augmentations (see the package docstring).

`@register_augment("name", strength=s)` goes on an `Augment` class or on a builder `fn(*, num_classes, ...)`;
`list_augments()` gives the names weakest to strongest (by `strength`), `build_augment` makes one.
A module of its own, like `models/registry.py` and `augment/hard/base.py`, so that the registered modules
never import their package.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Callable

from ..errors import UserError

if TYPE_CHECKING:
    from .standard import Augment

_AUGMENTS: dict[str, tuple[int, Callable[..., Augment]]] = {}


def register_augment(name: str, *, strength: int):
    """Decorator: add an `Augment` class or builder under `name`. `strength` places it in `list_augments()`,
    weakest to strongest, roughly: identity, the worlds' nuisances, geometric and policy augmentations, then
    the mixing ones. The builder's keyword arguments say which of `build_augment`'s options it takes."""

    def add(fn):
        _AUGMENTS[name] = (strength, fn)
        return fn

    return add


def list_augments() -> list[str]:
    """Every registered name, weakest to strongest."""
    return sorted(_AUGMENTS, key=lambda name: (_AUGMENTS[name][0], name))


def build_augment(name: str, *, num_classes: int, max_shift: int = 4, criterion: str = "kl", rounds: int = 2,
                  keep: int | None = None, temperature: float = 4.0, alpha: float = 1.0) -> Augment:
    """Build an augmentation by name.

    `max_shift` is for "shift"; `alpha` (Beta(alpha, alpha) for lambda) for mixup/cutmix/cutmixpick;
    `criterion`, `rounds`, `keep`, `temperature` for "cutmixpick" (defaults as in paper 2's public code).
    Each registered class or builder gets those of these options that its signature names.
    """
    if name not in _AUGMENTS:
        raise UserError(f"unknown augmentation {name!r}; choose one of: {', '.join(list_augments())}")
    build = _AUGMENTS[name][1]
    options = {"max_shift": max_shift, "criterion": criterion, "rounds": rounds, "keep": keep,
               "temperature": temperature, "alpha": alpha}
    takes = inspect.signature(build).parameters
    return build(num_classes=num_classes, **{k: v for k, v in options.items() if k in takes})
