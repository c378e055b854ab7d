"""One training step, plain (KD or CE) or HARD. The loop and the benchmark both call `distil_step`.

HARD step (one forward and one backward for both players, see `losses.hard_loss`):

    x_aug, params = augmentor(x[:m])                  m = share * batch, the augmented part
    teacher on x[:max(c, m)] (no grad)                c = batch - m clean images; reused twice:
                                                      KD target for the clean part, and T(x) for lambda
    teacher, student on reverse_grad(x_aug)           the augmentor's gradient arrives negated
    L.backward(); student.step(); augmentor.step()    the augmentor only on every `hard_every`-th step
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..augment.hard import reverse_grad
from ..losses import ce_loss, hard_loss, kd_loss
from .setup import Session


@dataclass
class StepResult:
    loss: Tensor  # what the student minimised (KD or CE), for logging
    x: Tensor  # source images (after standard augmentation; with HARD, the ones the augmentor changed)
    x_seen: Tensor  # what the student saw of them (the augmentor's output, with HARD)
    y: Tensor
    teacher_logits: Tensor | None  # the teacher on x_seen
    student_logits: Tensor  # the student on x_seen
    params: dict[str, Tensor] = field(default_factory=dict)  # the augmentor's per-sample choices
    extra: dict[str, Tensor] = field(default_factory=dict)  # e.g. disagreement, consistency


def distil_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int) -> StepResult:
    x, y = s.augment(x, y, s.teacher, s.student)
    if s.augmentor is not None:
        return _hard_step(s, x, y, knobs, step)
    with s.autocast:
        if s.teacher is not None:
            with torch.no_grad():
                t_logits = s.teacher(x)
        s_logits = s.student(x)
        if s.cfg.loss == "kd":
            loss = kd_loss(s_logits, t_logits, y, knobs["temperature"], knobs["alpha"])
        else:
            loss, t_logits = ce_loss(s_logits, y), None
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    return StepResult(loss.detach(), x, x, y, t_logits, s_logits.detach())


def _hard_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int) -> StepResult:
    n = x.shape[0]
    m = max(1, round(s.cfg.hard_share * n))
    c = n - m
    update = step % s.cfg.hard_every == 0
    grad = contextlib.nullcontext() if update else torch.no_grad()
    with s.autocast:
        # The augmentor runs in float32 even under bf16 autocast: it is tiny, and in bf16 its game died on
        # CUDA (within 100 steps every sample got the same shift and its gradients were exactly 0).
        with grad, torch.autocast(s.device.type, enabled=False):
            x_aug, params = s.augmentor(x[:m])
        x_in = reverse_grad(x_aug) if update else x_aug.detach()
        with torch.no_grad():
            t_ref = s.teacher(x[:max(c, m)])
        with grad:
            t_aug = s.teacher(x_in)
        s_logits = s.student(torch.cat([x[:c], x_in]))
        y_seen = torch.cat([y[:c], y[:m]])
        loss, parts = hard_loss(s_logits, t_ref[:c], t_aug, t_ref[:m], y_seen, knobs["temperature"],
                                knobs["alpha"], knobs["hard_lambda"])
    s.optimizer.zero_grad(set_to_none=True)
    if update:
        s.augmentor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    if update:
        s.augmentor_optimizer.step()
        s.augmentor.project_()
    extra = {"disagreement": parts["disagreement"], "consistency": parts["consistency"].detach()}
    # for display, pair each source image with its augmented version and the models' outputs on it
    return StepResult(parts["kd"].detach(), x[:m], x_aug.detach(), y[:m], t_aug.detach(), s_logits[c:].detach(),
                      {k: v.detach() for k, v in params.items()}, extra)
