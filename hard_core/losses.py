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
    kl = (log_p.exp() * (log_p - log_q)).sum(1)
    return kl.mean() if reduction == "mean" else kl


def soft_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy with integer labels (N,) or soft labels (N, K)."""
    if y.dim() == 1:
        return F.cross_entropy(logits.float(), y)
    return -(y * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def kd_loss(student: Tensor, teacher: Tensor, y: Tensor | None, temperature: float = 4.0, alpha: float = 1.0) -> Tensor:
    """The KD objective; with alpha == 1 the labels are not used (pure distillation)."""
    soft = kl_div(teacher, student, temperature) * temperature**2
    if alpha >= 1.0 or y is None:
        return soft
    return alpha * soft + (1 - alpha) * soft_cross_entropy(student, y)


def ce_loss(student: Tensor, y: Tensor) -> Tensor:
    """The cross-entropy baseline (and the teacher's pretraining loss)."""
    return soft_cross_entropy(student, y)
