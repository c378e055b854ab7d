"""T. stddev (paper 2): a teacher-only score of how good an augmentation is for KD; lower is better.

`batches` times: take a batch of images, augment it, average the teacher's softmax over the batch -> one
mean probability vector (K). Stack them (batches x K), take the standard deviation over batches per class
(Bessel-corrected, ddof=1, i.e. `torch.std`'s default), then average over classes.

`views` says which images a batch's mean is taken over: "augmented" (the augmented batch only) or
"original+augmented" (the batch's originals followed by their augmented views: what the student sees under
KD+DA in paper 2, `RunConfig.views`). With "none" both give the same score (cat(x, x) has x's mean).

Batches come from a seeded shuffled pass over `x` (like a DataLoader with shuffle=True, drop_last=True: no
image repeats within a pass; a new permutation starts when one runs out), see `batch_indices`. The same
seed seeds the augmentation's randomness, so the same seed gives the same number, and every augmentation
ranked with one seed sees the same image batches (common random numbers: a fairer comparison).

>>> score = t_stddev(teacher, x_train, build_augment("shift", num_classes=10))  # a float; lower is better
>>> rank_augmentations(teacher, x_train, ["none", "shift", "mixup"], num_classes=10)[0]  # the best one
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment import AUGMENTATIONS, Augment, build_augment
from ..models import eval_mode

VIEWS = ("augmented", "original+augmented")
Views = Literal["augmented", "original+augmented"]


def batch_indices(n: int, batches: int, batch_size: int, seed: int) -> Tensor:
    """batches x batch_size indices into n images from consecutive seeded permutations (CPU, int64)."""
    g = torch.Generator().manual_seed(seed)
    per_pass = n // batch_size
    passes = -(-batches // per_pass)
    idx = torch.cat([torch.randperm(n, generator=g)[: per_pass * batch_size] for _ in range(passes)])
    return idx[: batches * batch_size].view(batches, batch_size)


def t_stddev(teacher: nn.Module, x: Tensor, augment: Augment, *, batches: int = 20, batch_size: int = 128,
             temperature: float = 1.0, seed: int = 0, y: Tensor | None = None,
             student: nn.Module | None = None, views: Views = "augmented") -> float:
    """T. stddev of `augment` for `teacher` on images `x` (float in [0, 1], on the teacher's device).

    `batch_size` is capped at len(x). Label-mixing augmentations (mixup, cutmix, cutmixpick) mix `y` if
    given (N integer labels or N x K soft labels), else one-hot labels of the teacher's argmax on the clean
    batch. CutMixPick is scored with the `student` if given; without one only its "teacher-entropy"
    criterion can run (`rank_augmentations` builds it that way, keeping the score teacher-only).
    """
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    if batches < 2:
        raise ValueError(f"batches must be >= 2 to take a standard deviation, got {batches}")
    if batch_size < 1 or len(x) < 1:
        raise ValueError(f"need batch_size >= 1 and at least one image, got {batch_size} and {len(x)}")
    idx = batch_indices(len(x), batches, min(batch_size, len(x)), seed)
    devices = [x.device.index or 0] if x.is_cuda else []
    means = []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), eval_mode(teacher, student):
        torch.manual_seed(seed)
        for rows in idx:
            xb = x[rows.to(x.device)]
            if y is not None:
                yb = y[rows.to(y.device)]
            elif augment.mixes_labels:
                yb = teacher(xb).argmax(1)
            else:  # ignored by augmentations that do not mix labels: skip the extra teacher pass
                yb = torch.zeros(len(xb), dtype=torch.long, device=x.device)
            xa, _ = augment(xb, yb, teacher=teacher, student=student)
            if views == "original+augmented":
                xa = torch.cat([xb, xa])
            means.append(F.softmax(teacher(xa).float() / temperature, dim=1).mean(0))
    return float(torch.stack(means).std(0, unbiased=True).mean())


def rank_augmentations(teacher: nn.Module, x: Tensor, names: Sequence[str] | None = None, *, num_classes: int,
                       max_shift: int = 4, batches: int = 20, batch_size: int = 128, seed: int = 0,
                       y: Tensor | None = None, temperature: float = 1.0,
                       views: Views = "augmented") -> list[tuple[str, float]]:
    """[(name, T. stddev)] sorted ascending (lower = better, per paper 2); all augmentations by default.

    Image-only augmentations are skipped on 1D data; "cutmixpick" uses its teacher-entropy criterion.
    """
    results = []
    for name in AUGMENTATIONS if names is None else names:
        crit = "teacher-entropy" if name == "cutmixpick" else "kl"
        aug = build_augment(name, num_classes=num_classes, max_shift=max_shift, criterion=crit)
        if aug.images_only and x.dim() == 3:
            continue
        score = t_stddev(teacher, x, aug, batches=batches, batch_size=batch_size, temperature=temperature,
                         seed=seed, y=y, views=views)
        results.append((name, score))
    return sorted(results, key=lambda r: r[1])
