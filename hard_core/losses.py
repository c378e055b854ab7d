"""Distillation losses.

KD (Hinton et al.): alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).
The T^2 factor keeps the gradient scale of the soft term independent of T. `y` may be soft
(mixup/CutMix labels), so CE takes probabilities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_div(p_logits: Tensor, q_logits: Tensor, temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """KL(softmax(p/T) || softmax(q/T)) per sample ("none") or averaged over the batch ("mean")."""
    log_p = F.log_softmax(p_logits.float() / temperature, dim=1)
    log_q = F.log_softmax(q_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(1)  # p * (log p - log q), summed
    return kl.mean() if reduction == "mean" else kl


def soft_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy with integer labels (N,) or soft labels (N, K)."""
    return F.cross_entropy(logits.float(), y if y.dim() == 1 else y.float())  # soft: class probabilities


def kd_loss(student: Tensor, teacher: Tensor, y: Tensor | None, temperature: float = 4.0, alpha: float = 1.0) -> Tensor:
    """The KD objective; with alpha == 1 the labels are not used (pure distillation)."""
    soft = kl_div(teacher, student, temperature) * temperature**2
    if alpha >= 1.0 or y is None:
        return soft
    return alpha * soft + (1 - alpha) * soft_cross_entropy(student, y)


def ce_loss(student: Tensor, y: Tensor) -> Tensor:
    """The cross-entropy baseline (and the teacher's pretraining loss)."""
    return soft_cross_entropy(student, y)


def consistency(teacher_src: Tensor, teacher_aug: Tensor, temperature: float, reduction: str = "mean") -> Tensor:
    """T^2 * KL(T(x) || T(x_aug)): how far the teacher's own prediction moved (x's side carries no gradient)."""
    return kl_div(teacher_src.detach(), teacher_aug, temperature, reduction) * temperature**2


def hard_kd(student: Tensor, teacher: Tensor, y: Tensor | None, clean: int, temperature: float,
            alpha: float) -> Tensor:
    """The student's KD on HARD's batch, [clean images; the augmentor's images], in both schedules.

    The clean images get the KD objective (alpha-weighted distillation plus the label term); the augmentor's
    images get the distillation term alone, at full weight, as paper 2's augmented view does. So the labels
    never reach the augmentor's images: the gradient the student's loss sends into them is exactly
    T^2 * KL(T(x_aug) || S(x_aug)) per image, whatever alpha is (the `reverse` schedule's augmentor then
    plays `augmentor_objective`, as the `alternate` one does), and an image the augmentor changed (a HARD-mix
    paste of another digit) is never trained towards its unchanged label. With alpha 1 this is `kd_loss`.
    """
    if alpha >= 1.0 or y is None:
        return kd_loss(student, teacher, None, temperature)
    soft = kl_div(teacher, student, temperature, "none") * temperature**2
    weight = torch.ones_like(soft)
    weight[:clean] = alpha
    labels = y[:clean] if y.dim() == 1 else y[:clean].float()
    label_term = F.cross_entropy(student[:clean].float(), labels, reduction="sum") if clean else soft.new_zeros(())
    return ((weight * soft).sum() + (1 - alpha) * label_term) / soft.shape[0]


def hard_loss(student: Tensor, teacher_clean: Tensor, teacher_aug: Tensor, teacher_src: Tensor,
              y: Tensor | None, temperature: float, alpha: float, lam: float) -> tuple[Tensor, Tensor]:
    """HARD's whole game as one scalar (Nix et al. 2023), for the single pass with gradient reversal.
    Inputs are logits:

    - `student`: the student on [clean images; augmented images], in that order;
    - `teacher_clean`, `teacher_aug`: the teacher on the same two parts;
    - `teacher_src`: the teacher on the clean originals of the augmented images;
    - `y`: the labels of the whole batch (only the clean part's are used, see `hard_kd`).

        L = hard_kd(S, T; clean and augmented) - lam * share * T^2 * KL(T(x) || T(x_aug))

    The student descends L: KD on everything it sees, the labels on the clean part. The augmentor sits
    behind a gradient reversal (`augment.hard.reverse_grad`), so the same backward pass makes it *ascend* L,
    whose only terms that depend on x_aug are share * `augmentor_objective`: the student's disagreement with
    the teacher on x_aug, KL(T(x_aug) || S(x_aug)), minus lam times how far the teacher's own prediction
    moved, so x_aug must still look like the same thing to the teacher. No label term and no alpha: the
    alternating schedule's game, for every alpha (tested). `share` (augmented / all) puts both augmentor
    terms on the same per-sample scale. Returns (L, the KD part of L).
    """
    teacher_all = torch.cat([teacher_clean, teacher_aug])
    share = teacher_aug.shape[0] / teacher_all.shape[0]
    kd = hard_kd(student, teacher_all, y, teacher_clean.shape[0], temperature, alpha)
    return kd - lam * share * consistency(teacher_src, teacher_aug, temperature), kd


def augmentor_objective(teacher_aug: Tensor, student_aug: Tensor, teacher_src: Tensor, temperature: float,
                        lam: float, reduction: str = "mean") -> Tensor:
    """What the augmentor maximises, the same game as `hard_loss` on its own, per sample ("none") or mean:

        T^2 * KL(T(x_aug) || S(x_aug)) - lam * T^2 * KL(T(x) || T(x_aug)).

    The alternating schedule descends its negative; candidate draws keep the highest-scoring sample.
    """
    disagreement = kl_div(teacher_aug, student_aug, temperature, reduction) * temperature**2
    return disagreement - lam * consistency(teacher_src, teacher_aug, temperature, reduction)


@torch.no_grad()
def game_metrics(teacher_src: Tensor, student_src: Tensor, teacher_aug: Tensor, student_aug: Tensor,
                 temperature: float) -> dict[str, Tensor]:
    """The augmentor's game in numbers, on one batch of source images x and their augmentations x_aug:

    - disagreement: T^2 * KL(T(x_aug) || S(x_aug)), what the augmentor raises;
    - consistency: T^2 * KL(T(x) || T(x_aug)), what lambda keeps small;
    - hardness: KL(T || S) on x_aug over KL(T || S) on the same x clean. 1 means the augmentor found
      nothing harder than the data; HARD-affine on the shift world reaches about 3.
    """
    t2 = temperature**2
    on_aug = kl_div(teacher_aug, student_aug, temperature) * t2
    on_clean = kl_div(teacher_src, student_src, temperature) * t2
    return {"disagreement": on_aug, "consistency": consistency(teacher_src, teacher_aug, temperature),
            "hardness": on_aug / on_clean.clamp_min(1e-8)}
