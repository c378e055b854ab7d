"""CutMixPick (Wang et al., "Knowledge distillation thrives on data augmentation"): keep the hardest CutMix.

Make `rounds` CutMix versions of the batch (each with its own partners and lambda), score every candidate
without gradients, keep the `keep` highest-scoring ones (default: one batch worth). Criteria as in the
paper's public code (two rounds; entropies at T = 1, only the KL at the KD temperature T, default 4):
  "teacher-entropy"  H(softmax(teacher))
  "student-entropy"  H(softmax(student))
  "kl"               KL(softmax(teacher / T) || softmax(student / T))

`pick` also says which candidates it kept (`Picked.index`) and which input image each was cut from
(`Picked.source`), so a caller that shows them never re-derives the choice.

>>> aug = CutMixPick(num_classes=10, criterion="teacher-entropy")
>>> x_aug, y_aug = aug(torch.rand(8, 1, 28, 28), torch.eye(10)[:8], teacher=my_teacher)
>>> x_aug.shape  # the 8 most uncertain of 16 candidates
torch.Size([8, 1, 28, 28])
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_augment
from ..models import eval_mode
from .standard import Augment, CutMix

CRITERIA = ("teacher-entropy", "student-entropy", "kl")


def pick_top(scores: Tensor, keep: int) -> Tensor:
    """Indices of the `keep` highest scores, highest first; ties go to the lower index (stable sort).

    >>> pick_top(torch.tensor([0.1, 0.9, 0.5]), 2)
    tensor([1, 2])
    """
    if not 1 <= keep <= scores.numel():
        raise ValueError(f"keep must be in 1..{scores.numel()} (number of candidates), got {keep}")
    return torch.argsort(scores, descending=True, stable=True)[:keep]


def score_candidates(x: Tensor, criterion: str, temperature: float, teacher: nn.Module | None = None,
                     student: nn.Module | None = None) -> Tensor:
    """Per-sample score (N,) of a batch under `criterion`; no gradients, models in eval mode meanwhile.

    `temperature` applies to the KL criterion only; entropies are taken at T = 1 (the paper's public code).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    t = temperature if criterion == "kl" else 1.0
    with torch.no_grad(), eval_mode(teacher, student):
        log_t = F.log_softmax(teacher(x).float() / t, dim=1) if criterion != "student-entropy" else None
        log_s = F.log_softmax(student(x).float() / t, dim=1) if criterion != "teacher-entropy" else None
    if criterion == "teacher-entropy":
        return -(log_t.exp() * log_t).sum(1)
    if criterion == "student-entropy":
        return -(log_s.exp() * log_s).sum(1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


class Picked(NamedTuple):
    """What CutMixPick kept: the images and soft labels, which of the candidates (`index`, into the
    `rounds` x N stacked candidates, highest score first), the input image each was cut from (`source`,
    the one whose background it keeps), and the kept candidates' scores."""

    x: Tensor
    y: Tensor
    index: Tensor
    source: Tensor
    scores: Tensor


@register_augment("cutmixpick", strength=110)
class CutMixPick(Augment):
    """CutMix candidates scored by the teacher/student; returns the `keep` highest-scoring ones.

    `keep=None` keeps as many as the input batch has. Output order: highest score first. The models are
    switched to eval mode while scoring (so the scoring pass leaves BatchNorm statistics alone) and every
    submodule's mode is restored afterwards.
    """

    name = "cutmixpick"
    needs_models = True
    mixes_labels = True

    def __init__(self, *, num_classes: int, criterion: str = "kl", rounds: int = 2, keep: int | None = None,
                 temperature: float = 4.0, alpha: float = 1.0):
        super().__init__(num_classes=num_classes)
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
        if int(rounds) != rounds or rounds < 1:
            raise ValueError(f"rounds must be an integer >= 1, got {rounds}")
        if keep is not None and (int(keep) != keep or keep < 1):
            raise ValueError(f"keep must be an integer >= 1 (or None for the batch size), got {keep}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.criterion, self.rounds, self.keep, self.temperature = criterion, int(rounds), keep, temperature
        self.cutmix = CutMix(num_classes=num_classes, alpha=alpha)

    def candidates(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """`rounds` CutMix batches stacked: (rounds * N) x ..., round r at rows r*N .. (r+1)*N - 1."""
        y = self._check(x, y)
        parts = [self.cutmix(x, y) for _ in range(self.rounds)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def apply(self, x, y, *, teacher, student):
        picked = self.pick(x, y, teacher=teacher, student=student)
        return picked.x, picked.y

    def pick(self, x: Tensor, y: Tensor, *, teacher: nn.Module | None, student: nn.Module | None) -> Picked:
        """The kept candidates and which they are (see `Picked`); `y` as N labels or N x K soft labels."""
        y = self._check(x, y)
        if teacher is None and self.criterion != "student-entropy":
            raise ValueError(f"cutmixpick with criterion {self.criterion!r} needs the teacher: "
                             "call aug(x, y, teacher=..., student=...)")
        if student is None and self.criterion != "teacher-entropy":
            raise ValueError(f"cutmixpick with criterion {self.criterion!r} needs the student: "
                             "call aug(x, y, teacher=..., student=...)")
        keep = x.shape[0] if self.keep is None else self.keep
        if keep > self.rounds * x.shape[0]:
            raise ValueError(f"keep={keep} exceeds the {self.rounds} x {x.shape[0]} candidates; "
                             "lower keep or raise rounds")
        xc, yc = self.candidates(x, y)
        scores = score_candidates(xc, self.criterion, self.temperature, teacher, student)
        idx = pick_top(scores, keep)
        return Picked(xc[idx], yc[idx], idx, idx % x.shape[0], scores[idx])
