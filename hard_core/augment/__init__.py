"""Data augmentations for KD: standard ones and CutMixPick (the HARD augmentors live elsewhere).

>>> aug = build_augment("cutmix", num_classes=10)
>>> x_aug, y_aug = aug(torch.rand(8, 1, 28, 28), torch.eye(10)[:8])
"""
from __future__ import annotations

from ..errors import UserError
from .cutmixpick import CRITERIA, CutMixPick, pick_top, score_candidates
from .standard import Augment, CutMix, MixUp, NoAugment, PerSample, Polarity, Shift, Thickness, standard_augment

# Weakest to strongest, roughly; "cutmixpick" also needs the teacher (and student) at call time.
AUGMENTATIONS: tuple[str, ...] = ("none", "shift", "rotation", "polarity", "thickness", "flip-crop", "randaugment",
                                  "autoaugment", "cutout", "mixup", "cutmix", "cutmixpick")


def build_augment(name: str, *, num_classes: int, max_shift: int = 4, criterion: str = "kl", rounds: int = 2,
                  keep: int | None = None, temperature: float = 4.0, alpha: float = 1.0) -> Augment:
    """Build an augmentation by name.

    `max_shift` is for "shift"; `alpha` (Beta(alpha, alpha) for lambda) for mixup/cutmix/cutmixpick;
    `criterion`, `rounds`, `keep`, `temperature` for "cutmixpick" (defaults as in paper 2's public code).
    """
    if name not in AUGMENTATIONS:
        raise UserError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    if name == "cutmixpick":
        return CutMixPick(num_classes=num_classes, criterion=criterion, rounds=rounds, keep=keep,
                          temperature=temperature, alpha=alpha)
    return standard_augment(name, num_classes=num_classes, max_shift=max_shift, alpha=alpha)


__all__ = ["AUGMENTATIONS", "Augment", "CRITERIA", "CutMix", "CutMixPick", "MixUp", "NoAugment",
           "PerSample", "Polarity", "Shift", "Thickness", "build_augment", "pick_top", "score_candidates"]
