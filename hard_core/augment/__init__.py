"""Data augmentations for KD: standard ones and CutMixPick (the HARD augmentors live elsewhere).

Each is registered by name (`@register_augment`, `augment/registry.py`); `AUGMENTATIONS` lists them weakest
to strongest, roughly; "cutmixpick" also needs the teacher (and student) at call time.

>>> aug = build_augment("cutmix", num_classes=10)
>>> x_aug, y_aug = aug(torch.rand(8, 1, 28, 28), torch.eye(10)[:8])
"""
from __future__ import annotations

from .registry import build_augment, list_augments, register_augment
from .cutmixpick import CRITERIA, CutMixPick, pick_top, score_candidates  # noqa: E402  (registers it)
from .standard import (Augment, CutMix, MixUp, NoAugment, PerSample, Polarity, Rotation, Shift,  # noqa: E402
                       Thickness)

AUGMENTATIONS: tuple[str, ...] = tuple(list_augments())

__all__ = ["AUGMENTATIONS", "Augment", "CRITERIA", "CutMix", "CutMixPick", "MixUp", "NoAugment", "PerSample",
           "Polarity", "Rotation", "Shift", "Thickness", "build_augment", "list_augments", "pick_top",
           "register_augment", "score_candidates"]
