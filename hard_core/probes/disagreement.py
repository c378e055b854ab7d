"""Disagreement maps: where in the input the teacher and the student disagree most.

The map is the magnitude of the input gradient of KL(teacher(x) || student(x)) at temperature T, one
value per pixel (absolute values summed over channels) or per sample of a 1D signal. Bright pixels are
the ones whose change would move the two models' predictions apart (or together) fastest.

>>> m = disagreement_map(teacher, student, x)          # x: N x C x H x W in [0, 1] -> m: N x H x W
>>> m.mean()                                          # one number: how much they disagree, locally
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import eval_mode
from ..losses import kl_div


def disagreement_map(teacher: nn.Module, student: nn.Module, x: Tensor, temperature: float = 1.0) -> Tensor:
    """|d KL(T(x) || S(x); T) / dx| summed over channels: N x H x W for images, N x L for 1D signals.

    The KL is summed (not averaged) over the batch, so an image's map does not depend on the batch it
    came in. Both models run in eval mode and get their train/eval flags back; only the input gets a
    gradient (`torch.autograd.grad`), so no `.grad` is left on any parameter. Returns a detached float
    tensor on x's device.

    >>> disagreement_map(teacher, teacher, x).abs().max()    # tensor(0.): a model agrees with itself
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be N x C x H x W images or N x C x L signals, got shape {tuple(x.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    xg = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).detach().requires_grad_(True)
    with eval_mode(teacher, student), torch.enable_grad():
        kl = kl_div(teacher(xg), student(xg), temperature, reduction="none").sum()
        if not kl.requires_grad:  # neither model reads its input: nothing can change the KL
            return torch.zeros_like(xg).sum(1)
        (grad,) = torch.autograd.grad(kl, xg, allow_unused=True)
    return torch.zeros_like(xg).sum(1) if grad is None else grad.abs().sum(1)
